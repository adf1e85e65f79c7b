"""Index migrations run outside a transaction (CREATE INDEX CONCURRENTLY): the fleet's
writes go on while they build, a build that failed halfway is redone, and the migration
is recorded only once every statement succeeded."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from ruvon_workers.persistence import sql
from ruvon_workers.persistence.migrate import migrate, status

SERVER_INDEXES = {
    "workflow_executions_created_idx",
    "workflow_executions_status_created_idx",
    "workflow_executions_type_created_idx",
    "workflow_executions_key_pattern_idx",
    "workflow_executions_completed_idx",
}
INSERT = ("INSERT INTO workflow_executions (id, workflow_type, workflow_version, status, "
          "current_step, state) VALUES (%s, %s, '1', 'ACTIVE', 'A', '{}')")


def _up_to(url: str, last: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database as the version whose newest migration is ``last`` left it."""
    real = sql.migrations()
    monkeypatch.setattr(sql, "migrations", lambda: tuple(m for m in real if m.number <= last))
    migrate(url)
    monkeypatch.setattr(sql, "migrations", lambda: real)


def _indexes(url: str) -> dict[str, bool]:
    """The server's indexes that exist, by name, and whether each is valid."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = ANY(%s)",
            (sorted(SERVER_INDEXES),)).fetchall()
    return dict(rows)


def _recorded(url: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT number FROM ruvon_schema_migrations")}


def test_0010_is_marked_and_split_into_its_statements() -> None:
    (m,) = [m for m in sql.migrations() if m.number == 10]
    assert not m.transactional
    statements = m.statements()
    assert len(statements) == len(SERVER_INDEXES)
    assert all(s.startswith("CREATE INDEX CONCURRENTLY IF NOT EXISTS") for s in statements)
    assert all(m.transactional for m in sql.migrations() if m.number < 10)


def test_split_keeps_quoted_semicolons_and_drops_comments() -> None:
    text = ("-- ruvon: no-transaction\nCREATE INDEX a ON t (x) WHERE y <> ';'; -- done; ok\n"
            'CREATE INDEX "b;c" ON t (z);\n\n')
    assert sql.split_statements(text) == [
        "CREATE INDEX a ON t (x) WHERE y <> ';'", 'CREATE INDEX "b;c" ON t (z)']
    with pytest.raises(ValueError, match="dollar"):
        sql.split_statements("DO $$ BEGIN END $$;")


def test_the_concurrent_migration_applies_and_is_recorded(
        empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _up_to(empty_database_url, 9, monkeypatch)
    assert 10 not in _recorded(empty_database_url)
    assert [m.number for m in migrate(empty_database_url)] == [10]
    assert _indexes(empty_database_url) == dict.fromkeys(SERVER_INDEXES, True)
    assert 10 in _recorded(empty_database_url)
    assert all(s.applied for s in status(empty_database_url))
    assert migrate(empty_database_url) == []


def test_an_invalid_index_left_by_a_failed_build_is_rebuilt(
        empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A concurrent build that fails leaves an INVALID index under its name, which
    IF NOT EXISTS alone would keep: the re-run drops it and builds the real one."""
    _up_to(empty_database_url, 9, monkeypatch)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        for _ in range(2):
            conn.execute(INSERT, (uuid.uuid4(), "Same"))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY workflow_executions_created_idx "
                         "ON workflow_executions (workflow_type)")
    assert _indexes(empty_database_url) == {"workflow_executions_created_idx": False}

    assert [m.number for m in migrate(empty_database_url)] == [10]
    assert _indexes(empty_database_url) == dict.fromkeys(SERVER_INDEXES, True)
    with psycopg.connect(empty_database_url) as conn:
        (definition,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = "
            "'workflow_executions_created_idx'").fetchone() or (None,)
    assert definition is not None
    assert "UNIQUE" not in definition and "created_at DESC, id DESC" in definition


def test_a_failing_statement_leaves_the_migration_unrecorded(
        empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statements before the failure stay built; the migration is recorded by the
    re-run that gets through all of them."""
    _up_to(empty_database_url, 10, monkeypatch)
    real = sql.migrations()

    def with_extra(text: str) -> None:
        extra = sql.Migration(11, "extra", text, transactional=False)
        monkeypatch.setattr(sql, "migrations", lambda: (*real, extra))

    with_extra("-- ruvon: no-transaction\n"
               "CREATE INDEX CONCURRENTLY IF NOT EXISTS extra_type_idx "
               "ON workflow_executions (workflow_type);\n"
               "CREATE INDEX CONCURRENTLY IF NOT EXISTS extra_missing_idx "
               "ON workflow_executions (no_such_column);\n")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        migrate(empty_database_url)
    assert 11 not in _recorded(empty_database_url)
    with_extra("-- ruvon: no-transaction\n"
               "CREATE INDEX CONCURRENTLY IF NOT EXISTS extra_type_idx "
               "ON workflow_executions (workflow_type);\n"
               "CREATE INDEX CONCURRENTLY IF NOT EXISTS extra_status_idx "
               "ON workflow_executions (status);\n")
    assert [m.number for m in migrate(empty_database_url)] == [11]
    assert 11 in _recorded(empty_database_url)


def _wait_for_lock_wait(url: str, text: str, deadline: float) -> None:
    """Until a backend running a statement holding ``text`` waits on a
    lock."""
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE %s",
                ("%" + text + "%",)).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"no backend waited on a lock running {text!r}")


def test_writes_go_on_while_an_index_builds(
        empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's transaction that has written workflow_executions is still open when the
    migration starts. A build in the migration's transaction would queue for its SHARE
    lock behind that writer, and every later INSERT would queue behind the build; a
    concurrent build waits for the writer without taking that lock, so new INSERTs go
    through meanwhile and the index is built once the writer commits."""
    _up_to(empty_database_url, 9, monkeypatch)
    errors: list[BaseException] = []

    def run_migration() -> None:
        try:
            migrate(empty_database_url)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    with psycopg.connect(empty_database_url) as writer:
        writer.execute(INSERT, (uuid.uuid4(), "Open"))  # left uncommitted for now
        migration = threading.Thread(target=run_migration, daemon=True)
        migration.start()
        try:
            _wait_for_lock_wait(empty_database_url, "CREATE INDEX",
                                time.monotonic() + 30)
            with psycopg.connect(empty_database_url, autocommit=True) as other:
                other.execute("SET lock_timeout = '5s'")
                started = time.monotonic()
                other.execute(INSERT, (uuid.uuid4(), "During"))
                assert time.monotonic() - started < 5
            assert migration.is_alive(), "the build did not wait for the open writer"
            assert 10 not in _recorded(empty_database_url)
        finally:
            writer.commit()
            migration.join(timeout=60)
    assert not migration.is_alive()
    assert not errors, errors
    assert _indexes(empty_database_url) == dict.fromkeys(SERVER_INDEXES, True)
    assert 10 in _recorded(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        types = {r[0] for r in conn.execute("SELECT workflow_type FROM workflow_executions")}
    assert types == {"Open", "During"}


def test_a_second_migrator_waits_without_stalling_the_build(
        empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pods run `db migrate` at once. A concurrent build waits for every transaction
    older than it; the migrator waiting for the advisory lock must not be one of them (it
    would wait for the lock while the build waits for it: a deadlock)."""
    _up_to(empty_database_url, 9, monkeypatch)
    results: dict[str, object] = {}

    def run_migration(name: str) -> None:
        try:
            results[name] = [m.number for m in migrate(empty_database_url)]
        except BaseException as exc:  # reported by the test thread
            results[name] = exc

    with psycopg.connect(empty_database_url) as writer:
        writer.execute(INSERT, (uuid.uuid4(), "Open"))  # holds the first build back
        first = threading.Thread(target=run_migration, args=("first",), daemon=True)
        first.start()
        _wait_for_lock_wait(empty_database_url, "CREATE INDEX", time.monotonic() + 30)
        second = threading.Thread(target=run_migration, args=("second",), daemon=True)
        second.start()
        time.sleep(0.5)  # the second migrator is waiting for the lock
        writer.commit()
    # Longer than deadlock_timeout (1 s), after which PostgreSQL would report a deadlock.
    first.join(timeout=60)
    second.join(timeout=60)
    assert results == {"first": [10], "second": []}
    assert _indexes(empty_database_url) == dict.fromkeys(SERVER_INDEXES, True)
