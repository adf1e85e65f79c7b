"""``PostgresPersistenceProvider``: workflow state in PostgreSQL."""

from __future__ import annotations

from ruvon_workers.persistence.postgres import PostgresPersistenceProvider as _Postgres

from ._compat import RuvonPersistence


class PostgresPersistenceProvider(RuvonPersistence, _Postgres):
    """Workflow state in PostgreSQL (apply the schema with ``ruvon-workers db migrate``)."""


__all__ = ["PostgresPersistenceProvider"]
