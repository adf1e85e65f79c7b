"""Where workflow state lives: PostgreSQL in production, SQLite for in-process runs without
a server, memory for tests and prototypes.

The PostgreSQL and SQLite stores are imported on first use, so in-process use on the
memory store loads neither psycopg nor sqlite3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import PersistenceProvider
from .memory import MemoryPersistenceProvider

if TYPE_CHECKING:
    from .postgres import PostgresPersistenceProvider
    from .sqlite import SQLitePersistenceProvider

__all__ = ["MemoryPersistenceProvider", "PersistenceProvider", "PostgresPersistenceProvider",
           "SQLitePersistenceProvider"]


def __getattr__(name: str) -> object:
    if name == "PostgresPersistenceProvider":
        from .postgres import PostgresPersistenceProvider

        return PostgresPersistenceProvider
    if name == "SQLitePersistenceProvider":
        from .sqlite import SQLitePersistenceProvider

        return SQLitePersistenceProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
