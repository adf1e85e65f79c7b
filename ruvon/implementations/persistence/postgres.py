"""``PostgresPersistenceProvider``: workflow state in PostgreSQL."""

from __future__ import annotations

from ruvon_workers.persistence.postgres import PostgresPersistenceProvider

__all__ = ["PostgresPersistenceProvider"]
