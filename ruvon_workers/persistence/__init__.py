"""Where workflow state lives: PostgreSQL in production, memory for tests and prototypes.

The PostgreSQL store is imported on first use, so in-process use on the memory store
does not load psycopg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import PersistenceProvider
from .memory import MemoryPersistenceProvider

if TYPE_CHECKING:
    from .postgres import PostgresPersistenceProvider

__all__ = ["MemoryPersistenceProvider", "PersistenceProvider", "PostgresPersistenceProvider"]


def __getattr__(name: str) -> object:
    if name == "PostgresPersistenceProvider":
        from .postgres import PostgresPersistenceProvider

        return PostgresPersistenceProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
