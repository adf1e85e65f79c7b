"""SQLite-specific behaviour: several connections on one file, locks, the schema, errors.

The rules every store meets (compare-and-set, idempotency, leases, fan-outs, schedules,
dead letters) are in tests/contract, run against SQLite among others; this file checks
that they hold across separate connections (each provider has its own connection and
thread), as they do across PostgreSQL's pool."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ruvon_workers.engine.records import Branch, HistoryEntry, RecordUpdate, WorkflowRecord
from ruvon_workers.engine.runtime import Runtime
from ruvon_workers.errors import (
    DatabaseError,
    RuvonError,
    StaleStateError,
    UnstorableValue,
    WorkflowNotFound,
)
from ruvon_workers.persistence import SQLitePersistenceProvider


def _record(workflow_type: str = "T") -> WorkflowRecord:
    return WorkflowRecord(id=str(uuid.uuid4()), workflow_type=workflow_type,
                          workflow_version="1", status="ACTIVE", current_step="A",
                          state={"n": 0})


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "workflows.db"


@pytest.fixture
async def providers(db_file: Path) -> AsyncIterator[list[SQLitePersistenceProvider]]:
    """Eight providers on one file: eight connections, each on its own thread."""
    opened = [SQLitePersistenceProvider(db_file) for _ in range(8)]
    for provider in opened:
        await provider.initialize()
    yield opened
    for provider in opened:
        await provider.close()


async def test_eight_writers_on_separate_connections_exactly_one_wins(
        providers: list[SQLitePersistenceProvider]) -> None:
    record, _ = await providers[0].create_workflow(_record())
    for version in range(5):  # each round races from the version the last one left
        results = await asyncio.gather(
            *(p.apply(record.id, version, RecordUpdate.keep(record, state={"writer": i}),
                      [HistoryEntry("A", "COMPLETED", detail={"writer": i})])
              for i, p in enumerate(providers)),
            return_exceptions=True)
        winners = [i for i, r in enumerate(results) if isinstance(r, int)]
        losers = [r for r in results if isinstance(r, StaleStateError)]
        assert len(winners) == 1 and len(losers) == 7, results
        assert results[winners[0]] == version + 1
        assert {(e.expected_version, e.actual_version) for e in losers} == {
            (version, version + 1)}
        stored = await providers[-1].load_workflow(record.id)
        assert stored is not None and stored.state == {"writer": winners[0]}
    # Only the winners' history rows landed, one per round.
    history = await providers[3].history(record.id)
    assert [h.version for h in history] == [0, 1, 2, 3, 4, 5]


async def test_sweepers_on_separate_connections_never_claim_the_same_row(
        providers: list[SQLitePersistenceProvider]) -> None:
    first = providers[0]
    workflows = [(await first.create_workflow(_record(), due_in=-1))[0] for _ in range(60)]
    # And branches of fan-outs whose leases passed.
    fanned = []
    for _ in range(6):
        record, _ = await first.create_workflow(_record())
        await first.create_fanout(record.id, 1, "A", [Branch(i, f"b{i}") for i in range(5)],
                                  lease_seconds=0)
        await first.apply(record.id, 0, RecordUpdate.keep(
            record, status="PENDING_ASYNC", runtime=Runtime(
                parallel={"step": "A", "total": 5, "deadline": None}), due_in=300), [])
        fanned.append(record.id)
    await asyncio.sleep(0.01)

    async def sweep(provider: SQLitePersistenceProvider) -> list[tuple[str, int | None]]:
        taken: list[tuple[str, int | None]] = []
        while claimed := await provider.claim_due(lease_seconds=300, limit=7):
            taken += [(d.workflow_id, d.branch) for d in claimed]
        return taken

    sweeps = await asyncio.gather(*(sweep(p) for p in providers[:4]))
    taken = [item for claims in sweeps for item in claims]
    expected = {(w.id, None) for w in workflows} | {(w, i) for w in fanned for i in range(5)}
    assert len(taken) == len(set(taken))  # nothing claimed twice
    assert set(taken) == expected  # and nothing left behind


async def test_branches_on_separate_connections_count_down_to_zero_once(
        providers: list[SQLitePersistenceProvider]) -> None:
    record, _ = await providers[0].create_workflow(_record())
    await providers[0].create_fanout(record.id, 1, "A",
                                     [Branch(i, f"b{i}") for i in range(24)], 300)

    async def finish(idx: int) -> int | None:
        provider = providers[idx % len(providers)]
        return await provider.finish_branch(record.id, 1, idx, status="COMPLETED",
                                            result={"i": idx}, error=None, attempt=1,
                                            duration_ms=1.0)

    remaining = await asyncio.gather(*(finish(i) for i in range(24)),
                                     *(finish(i) for i in range(24)))  # and duplicates
    assert sorted(r for r in remaining if r is not None) == list(range(24))


async def test_a_file_database_outlives_its_provider(db_file: Path) -> None:
    writer = SQLitePersistenceProvider(str(db_file))
    await writer.initialize()
    record, _ = await writer.create_workflow(_record())
    await writer.close()
    reader = SQLitePersistenceProvider(db_file)
    await reader.initialize()  # the schema is there already: nothing changes
    try:
        loaded = await reader.load_workflow(record.id)
        assert loaded is not None and loaded.state == {"n": 0}
        assert loaded.created_at is not None and loaded.created_at.tzinfo is not None
    finally:
        await reader.close()
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


async def test_a_file_written_under_the_old_waiting_name_is_read_as_waiting_human(
        db_file: Path) -> None:
    writer = SQLitePersistenceProvider(db_file)
    await writer.initialize()
    record, _ = await writer.create_workflow(_record())
    await writer.close()
    with sqlite3.connect(db_file) as conn:
        conn.execute("UPDATE workflow_executions SET status = 'WAITING_HUMAN_INPUT'")
    conn.close()
    reader = SQLitePersistenceProvider(db_file)
    await reader.initialize()
    try:
        loaded = await reader.load_workflow(record.id)
        assert loaded is not None and loaded.status == "WAITING_HUMAN"
        listed = await reader.list_workflows(status="WAITING_HUMAN")
        assert [r.id for r in listed] == [record.id]
    finally:
        await reader.close()


async def test_each_memory_provider_is_a_database_of_its_own() -> None:
    one, two = SQLitePersistenceProvider(), SQLitePersistenceProvider(":memory:")
    await one.initialize()
    await two.initialize()
    try:
        record, _ = await one.create_workflow(_record())
        assert await one.load_workflow(record.id) is not None
        assert await two.load_workflow(record.id) is None
    finally:
        await one.close()
        await two.close()


async def test_a_lock_held_past_the_timeout_is_a_database_error(db_file: Path) -> None:
    provider = SQLitePersistenceProvider(db_file, timeout=0.2)
    await provider.initialize()
    record, _ = await provider.create_workflow(_record())
    holder = sqlite3.connect(db_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        update = RecordUpdate.keep(record, state={"n": 1})
        try:
            with pytest.raises(DatabaseError, match=r"locked.*raise the timeout"):
                await provider.apply(record.id, 0, update, [])
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        assert ticks >= 5  # the loop ran on while the write waited for the lock
        loaded = await provider.load_workflow(record.id)  # reads go on under WAL
        assert loaded is not None and loaded.version == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await provider.apply(record.id, 0, update, []) == 1
    await provider.close()


async def test_without_auto_init_a_missing_schema_says_so(db_file: Path) -> None:
    provider = SQLitePersistenceProvider(db_file, auto_init=False)
    await provider.initialize()
    try:
        with pytest.raises(DatabaseError, match="auto_init=True"):
            await provider.create_workflow(_record())
    finally:
        await provider.close()


async def test_a_provider_must_be_initialized() -> None:
    provider = SQLitePersistenceProvider()
    with pytest.raises(RuvonError, match="initialize"):
        await provider.count_by_status()
    await provider.initialize()
    await provider.close()
    with pytest.raises(RuvonError, match="initialize"):
        await provider.count_by_status()
    await provider.initialize()  # opens again
    assert await provider.count_by_status() == {}
    await provider.close()


async def test_ids_are_uuids_as_on_postgresql() -> None:
    provider = SQLitePersistenceProvider()
    await provider.initialize()
    try:
        record, _ = await provider.create_workflow(_record())
        loaded = await provider.load_workflow(record.id.upper())  # canonical, as uuid
        assert loaded is not None and loaded.id == record.id
        with pytest.raises(WorkflowNotFound):
            await provider.load_workflow("not-a-uuid")
        bad = _record()
        bad.id = "not-a-uuid"
        with pytest.raises(UnstorableValue, match="SQLite refused"):
            await provider.create_workflow(bad)
    finally:
        await provider.close()


async def test_a_value_sqlite_cannot_hold_is_unstorable() -> None:
    provider = SQLitePersistenceProvider()
    await provider.initialize()
    try:
        record, _ = await provider.create_workflow(_record())
        with pytest.raises(UnstorableValue):  # beyond SQLite's 64-bit INTEGER
            await provider.finish_branch(record.id, 1, 0, status="COMPLETED", result=None,
                                         error=None, attempt=2**64, duration_ms=None)
    finally:
        await provider.close()


def _schema_before_scoped_keys() -> str:
    """The SQLite schema as versions before keys were scoped by type wrote it: one
    file-wide UNIQUE on ``idempotency_key``."""
    import re

    from ruvon_workers.persistence import sql

    schema = sql.sqlite_schema().replace("idempotency_key   TEXT,",
                                         "idempotency_key   TEXT    UNIQUE,", 1)
    old = re.sub(r"completed_at      REAL,\n(    --[^\n]*\n)*    UNIQUE \(workflow_type, "
                 r"idempotency_key\)\n", "completed_at      REAL\n", schema, count=1)
    assert old != schema
    return old


async def test_a_file_from_before_scoped_keys_is_upgraded_on_open(db_file: Path) -> None:
    """An older file is rebuilt with keys unique per workflow type, and the keys the
    engine built then (a sub-workflow's, a schedule's tick) take their ``ruvon:`` form, so
    a re-run of the step or tick finds the run it started."""
    import datetime as dt

    from ruvon_workers.engine.keys import child_key, tick_key

    parent, child = str(uuid.uuid4()), str(uuid.uuid4())
    tick = dt.datetime(2030, 1, 1, 3, tzinfo=dt.UTC)
    with contextlib.closing(sqlite3.connect(db_file, isolation_level=None)) as conn:
        conn.executescript(_schema_before_scoped_keys())
        conn.executemany(
            "INSERT INTO workflow_executions (id, workflow_type, workflow_version, status, "
            "state, idempotency_key, parent_id, created_at, updated_at) "
            "VALUES (?, ?, '1', 'ACTIVE', '{}', ?, ?, 0, 0)",
            [(parent, "Parent", f"schedule:nightly:{tick.isoformat()}", None),
             (child, "Child", f"{parent}:Spawn:3", parent)])
        conn.execute("INSERT INTO workflow_step_history (workflow_id, status, version, "
                     "created_at) VALUES (?, 'CREATED', 0, 0)", (child,))
        conn.execute("INSERT INTO ruvon_schedules (name, workflow_type, cron_expression, "
                     "next_run_at, created_at, updated_at) "
                     "VALUES ('nightly', 'Parent', '0 3 * * *', 0, 0, 0)")
    store = SQLitePersistenceProvider(db_file)
    await store.initialize()
    try:
        for wtype, key, expected in (("Child", child_key(parent, "Spawn", 3), child),
                                     ("Parent", tick_key("nightly", tick), parent)):
            record = _record(wtype)
            record.idempotency_key = key
            found, created = await store.create_workflow(record)
            assert (found.id, created) == (expected, False)
        other = _record("Other")
        other.idempotency_key = child_key(parent, "Spawn", 3)
        assert (await store.create_workflow(other))[1]  # another type: its own run
        assert [h.status for h in await store.history(child)] == ["CREATED"]
        loaded = await store.load_workflow(child)
        assert loaded is not None and loaded.parent_id == parent
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(db_file)) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "workflow_executions_due_idx" in names and "workflow_executions_scoped" not in names
