"""``InMemoryPersistence``: Ruvon's name for the in-memory store."""

from __future__ import annotations

from ruvon_workers.persistence.memory import MemoryPersistenceProvider

from ._compat import RuvonPersistence


class InMemoryPersistence(RuvonPersistence, MemoryPersistenceProvider):
    """Everything in memory, for tests and prototypes (nothing survives the process)."""


#: The name Ruvon's docs use.
InMemoryPersistenceProvider = InMemoryPersistence

__all__ = ["InMemoryPersistence", "InMemoryPersistenceProvider"]
