"""``SQLitePersistenceProvider``: workflow state in a SQLite file (Ruvon's development
default), or ``":memory:"`` for tests."""

from __future__ import annotations

from ruvon_workers.persistence.sqlite import SQLitePersistenceProvider as _SQLite

from ._compat import RuvonPersistence


class SQLitePersistenceProvider(RuvonPersistence, _SQLite):
    """Workflow state in a SQLite file; the schema is created when ``auto_init`` is on."""


__all__ = ["SQLitePersistenceProvider"]
