"""``InMemoryPersistence``: Ruvon's name for the in-memory store."""

from __future__ import annotations

from ruvon_workers.persistence.memory import MemoryPersistenceProvider


class InMemoryPersistence(MemoryPersistenceProvider):
    """Everything in memory, for tests and prototypes (nothing survives the process)."""


#: The name Ruvon's docs use.
InMemoryPersistenceProvider = InMemoryPersistence

__all__ = ["InMemoryPersistence", "InMemoryPersistenceProvider", "MemoryPersistenceProvider"]
