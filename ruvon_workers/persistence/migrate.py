"""Apply the numbered migrations (``ruvon-workers db migrate``) and report status.

A migration runs in a transaction of its own, and is recorded in that transaction. A
migration marked ``-- ruvon: no-transaction`` (one that builds indexes with ``CREATE
INDEX CONCURRENTLY``, so that the fleet's writes go on during the build) runs statement
by statement, each committed on its own, and is recorded once the last one succeeded.
A concurrent build that failed halfway leaves an INVALID index behind: a re-run drops it
and builds it again.
"""

from __future__ import annotations

import re
import time
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
_LOCK_POLL_SECONDS = 0.2
_RECORD = "INSERT INTO ruvon_schema_migrations (number, name) VALUES (%s, %s)"
# The index a CREATE INDEX statement names (IF NOT EXISTS skips an INVALID one).
_CREATE_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(\"(?:[^\"]|\"\")+\"|[A-Za-z_][\w$]*)\s+ON\s", re.IGNORECASE)
_INVALID_INDEX = """
SELECT NOT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)
"""


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
        _lock(conn)
        try:
            conn.execute(_TABLE)
            applied = {r[0] for r in conn.execute("SELECT number FROM ruvon_schema_migrations")}
            for migration in sql.migrations():
                if migration.number in applied:
                    continue
                if migration.transactional:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(_RECORD, (migration.number, migration.name))
                else:
                    _apply_outside_transaction(conn, migration)
                done.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return done


def _lock(conn: psycopg.Connection) -> None:
    """Take the migrators' advisory lock, polling rather than blocking: a backend blocked
    in pg_advisory_lock holds a snapshot, which a concurrent index build in the lock
    holder's session would wait for (a deadlock)."""
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_ID,)).fetchone()
        if row and row[0]:
            return
        time.sleep(_LOCK_POLL_SECONDS)


def _apply_outside_transaction(conn: psycopg.Connection, migration: sql.Migration) -> None:
    """Run each statement on its own (autocommit), then record the migration."""
    for statement in migration.statements():
        index = _CREATE_INDEX.match(statement)
        if index:
            _drop_if_invalid(conn, index[1])
        conn.execute(statement.encode())
    conn.execute(_RECORD, (migration.number, migration.name))


def _drop_if_invalid(conn: psycopg.Connection, index: str) -> None:
    """Drop ``index`` when a failed or interrupted concurrent build left it INVALID."""
    row = conn.execute(_INVALID_INDEX, (index,)).fetchone()
    if row and row[0]:
        conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}".encode())
