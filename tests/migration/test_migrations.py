"""The schema file and the replayed migrations build identical databases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from ruvon_workers.persistence import sql
from ruvon_workers.persistence.migrate import migrate, status

ROOT = Path(__file__).resolve().parents[2]

CATALOG = {
    "columns": """SELECT table_name, column_name, data_type, is_nullable, column_default
                    FROM information_schema.columns WHERE table_schema = 'public'
                     AND table_name <> 'ruvon_schema_migrations' ORDER BY 1, 2""",
    "indexes": """SELECT tablename, indexname, indexdef FROM pg_indexes
                   WHERE schemaname = 'public' AND tablename <> 'ruvon_schema_migrations'
                   ORDER BY 1, 2""",
    "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                         AND conrelid::regclass::text <> 'ruvon_schema_migrations'
                       ORDER BY 1, 2""",
}


def catalog(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(q).fetchall() for name, q in CATALOG.items()}


def test_schema_equals_replayed_migrations(empty_database_url: str, database_url: str) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(sql.schema().encode())
    from_schema = catalog(empty_database_url)
    from_migrations = catalog(database_url)  # the test template is built by migrate()
    assert from_schema["columns"], "schema.sql created nothing"
    assert from_schema == from_migrations


def test_migrate_is_idempotent_and_status_reports(empty_database_url: str) -> None:
    assert not any(s.applied for s in status(empty_database_url))
    applied = migrate(empty_database_url)
    assert [m.number for m in applied] == [m.number for m in sql.migrations()]
    assert migrate(empty_database_url) == []
    assert all(s.applied for s in status(empty_database_url))


def test_db_cli(empty_database_url: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", "db", *args,
                               "--database-url", empty_database_url],
                              capture_output=True, text=True, cwd=ROOT)

    pending = run("status")
    assert pending.returncode == 1 and "PENDING" in pending.stdout
    done = run("migrate")
    assert done.returncode == 0 and "applied 0001_initial" in done.stdout
    assert run("status").returncode == 0
    assert "up to date" in run("migrate").stdout


def test_db_cli_unreachable_database() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", "db", "migrate",
                           "--database-url", "postgresql://x@127.0.0.1:1/none?connect_timeout=1"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 6 and "cannot reach PostgreSQL" in proc.stderr


def test_a_workflow_waiting_under_the_old_status_name_is_renamed(
        empty_database_url: str) -> None:
    """Rows written before 0005 say WAITING_HUMAN_INPUT; after the migration they say
    WAITING_HUMAN, Ruvon's name, and the filters of every reader find them."""
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ruvon_schema_migrations (number integer PRIMARY KEY, name text "
            "NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for m in sql.migrations():
            if m.number < 5:
                conn.execute(m.sql.encode())
                conn.execute("INSERT INTO ruvon_schema_migrations (number, name) "
                             "VALUES (%s, %s)", (m.number, m.name))
        conn.execute(
            "INSERT INTO workflow_executions (id, workflow_type, workflow_version, status, "
            "current_step, state) VALUES (gen_random_uuid(), 'Loan', '1', "
            "'WAITING_HUMAN_INPUT', 'Approve', '{}'), (gen_random_uuid(), 'Loan', '1', "
            "'COMPLETED', NULL, '{}')")
    assert next(m.number for m in migrate(empty_database_url)) == 5
    with psycopg.connect(empty_database_url) as conn:
        rows = conn.execute("SELECT status FROM workflow_executions ORDER BY 1").fetchall()
    assert rows == [("COMPLETED",), ("WAITING_HUMAN",)]


def _migrated_up_to(url: str, last: int) -> None:
    """The database as a version whose newest migration is ``last`` left it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ruvon_schema_migrations (number integer PRIMARY KEY, name text "
            "NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for m in sql.migrations():
            if m.number <= last:
                for statement in [m.sql] if m.transactional else m.statements():
                    conn.execute(statement.encode())
                conn.execute("INSERT INTO ruvon_schema_migrations (number, name) "
                             "VALUES (%s, %s)", (m.number, m.name))


async def test_keys_written_before_0009_are_found_after_it(empty_database_url: str) -> None:
    """A sub-workflow, a FIRE_AND_FORGET run and a schedule's tick started before the
    upgrade carry the old keys; after 0009 a re-run of their step (or tick) finds them
    instead of starting a second one, and a producer's key is left as it was."""
    import datetime as dt
    import uuid

    from psycopg.types.json import Jsonb

    from ruvon_workers.engine.keys import child_key, spawn_key, tick_key
    from ruvon_workers.engine.records import WorkflowRecord
    from ruvon_workers.persistence import PostgresPersistenceProvider

    _migrated_up_to(empty_database_url, 7)
    parent, child, spawned, ticked, own = (str(uuid.uuid4()) for _ in range(5))
    tick = dt.datetime(2030, 1, 1, 3, tzinfo=dt.UTC)
    old_tick = f"schedule:nightly:{tick.isoformat()}"
    rows = [(parent, "Parent", None, None, {}),
            (child, "Child", f"{parent}:Spawn:3", parent, {"parent": {"id": parent}}),
            (spawned, "Report", f"{parent}:Fire:5", None, {"spawned_by": {"id": parent}}),
            (ticked, "Report", old_tick, None, {}),
            (own, "Report", "schedule:not-a-schedule:1", None, {})]
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        for wid, wtype, key, parent_id, runtime in rows:
            conn.execute(
                "INSERT INTO workflow_executions (id, workflow_type, workflow_version, "
                "status, current_step, state, runtime, idempotency_key, parent_id) VALUES "
                "(%s, %s, '1', 'ACTIVE', 'A', '{}', %s, %s, %s)",
                (wid, wtype, Jsonb(runtime), key, parent_id))
        conn.execute("INSERT INTO ruvon_schedules (name, workflow_type, cron_expression, "
                     "next_run_at) VALUES ('nightly', 'Report', '0 3 * * *', now())")
    assert [m.number for m in migrate(empty_database_url)][-1] == 10
    store = PostgresPersistenceProvider(empty_database_url, pool_min_size=1)
    await store.initialize()
    try:
        for wtype, key, expected in (("Child", child_key(parent, "Spawn", 3), child),
                                     ("Report", spawn_key(parent, "Fire", 5), spawned),
                                     ("Report", tick_key("nightly", tick), ticked)):
            found, created = await store.create_workflow(WorkflowRecord(
                id=str(uuid.uuid4()), workflow_type=wtype, workflow_version="1",
                status="ACTIVE", current_step="A", state={}, idempotency_key=key))
            assert (found.id, created) == (expected, False), key
        mine = await store.load_workflow(own)
        assert mine is not None and mine.idempotency_key == "schedule:not-a-schedule:1"
    finally:
        await store.close()


def test_a_migration_numbered_below_the_newest_applied_one_still_applies(
        empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migrations are recorded by number, not by the newest one: one that arrives after
    a later-numbered one was applied (two changes made side by side, here 0008 and 0009)
    is applied then."""
    real = sql.migrations()
    late = real[-2]
    monkeypatch.setattr(sql, "migrations", lambda: tuple(m for m in real if m is not late))
    assert late.number not in [m.number for m in migrate(empty_database_url)]
    monkeypatch.setattr(sql, "migrations", lambda: real)
    assert [m.number for m in migrate(empty_database_url)] == [late.number]
    assert migrate(empty_database_url) == []
