"""Apply the numbered migrations (``ruvon-workers db migrate``) and report status."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from . import sql

_TABLE = """
CREATE TABLE IF NOT EXISTS ruvon_schema_migrations (
    number      integer     PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
# One migrator at a time across the fleet (several pods may start together).
_LOCK_ID = 0x52_55_56_4F  # "RUVO"


@dataclass
class MigrationStatus:
    number: int
    name: str
    applied: bool


def status(db_url: str) -> list[MigrationStatus]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT to_regclass('ruvon_schema_migrations') IS NOT NULL").fetchone()
        applied = set()
        if exists and exists[0]:
            applied = {r[0] for r in conn.execute("SELECT number FROM ruvon_schema_migrations")}
    return [MigrationStatus(m.number, m.name, m.number in applied) for m in sql.migrations()]


def migrate(db_url: str) -> list[sql.Migration]:
    """Apply pending migrations, each in its own transaction; return those applied."""
    done: list[sql.Migration] = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(_TABLE)
            applied = {r[0] for r in conn.execute("SELECT number FROM ruvon_schema_migrations")}
            for migration in sql.migrations():
                if migration.number in applied:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO ruvon_schema_migrations (number, name) VALUES (%s, %s)",
                        (migration.number, migration.name),
                    )
                done.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return done
