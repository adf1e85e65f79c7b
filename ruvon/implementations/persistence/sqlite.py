"""``SQLitePersistenceProvider``: workflow state in a SQLite file (Ruvon's development
default), or ``":memory:"`` for tests."""

from __future__ import annotations

from ruvon_workers.persistence.sqlite import SQLitePersistenceProvider

__all__ = ["SQLitePersistenceProvider"]
