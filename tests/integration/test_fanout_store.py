"""The PostgreSQL side of PARALLEL: fan-in counting, the sweep's view of fan-outs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg

from ruvon_workers import WorkflowBuilder
from ruvon_workers.engine.records import RecordUpdate, WorkflowRecord
from ruvon_workers.persistence import PostgresPersistenceProvider

REGISTRY = Path(__file__).resolve().parents[1] / "fixtures" / "fleet" / "workflow_registry.yaml"
BRANCHES = [{"idx": i, "name": f"b{i}", "item": None} for i in range(2)]


async def _waiting(store: PostgresPersistenceProvider, deadline: float | None,
                   lease: float = 300) -> WorkflowRecord:
    """A Partial workflow waiting on a 2-branch fan-out, its due time already past."""
    record = WorkflowBuilder.from_registry(REGISTRY).new_record("Partial", {})
    stored, _ = await store.create_workflow(record)
    await store.create_fanout(stored.id, stored.version + 1, "Checks", BRANCHES, lease)
    runtime = {"parallel": {"step": "Checks", "total": 2, "deadline": deadline}}
    update = RecordUpdate("PENDING_ASYNC", "Checks", stored.state, runtime, due_in=-1)
    stored.version = await store.apply(stored.id, stored.version, update, [])
    return stored


def _due_in(database_url: str, workflow_id: str) -> float:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT extract(epoch FROM due_at - now()) FROM workflow_executions "
                           "WHERE id = %s", (workflow_id,)).fetchone()
    assert row is not None
    return float(row[0])


async def test_concurrent_branches_count_down_to_zero_exactly_once(
        pg_persistence: PostgresPersistenceProvider) -> None:
    record = await _waiting(pg_persistence, None)
    many = [{"idx": i, "name": f"b{i}", "item": None} for i in range(20)]
    await pg_persistence.create_fanout(record.id, record.version + 7, "Checks", many, 300)

    async def finish(idx: int) -> int | None:
        return await pg_persistence.finish_branch(
            record.id, record.version + 7, idx, status="COMPLETED", result={"i": idx},
            error=None, attempt=1, duration_ms=1.0)

    remaining = await asyncio.gather(*(finish(i) for i in range(20)),
                                     *(finish(i) for i in range(20)))  # and duplicates
    counted = [r for r in remaining if r is not None]
    assert sorted(counted) == list(range(20))  # each branch once; one of them saw 0
    rows = await pg_persistence.list_branches(record.id, record.version + 7)
    assert [r["result"] for r in rows] == [{"i": i} for i in range(20)]


async def test_a_fan_out_with_a_timeout_comes_due_at_its_deadline(
        pg_persistence: PostgresPersistenceProvider, database_url: str) -> None:
    timed = await _waiting(pg_persistence, time.time() + 5)
    untimed = await _waiting(pg_persistence, None)
    claimed = {d.workflow_id for d in await pg_persistence.claim_due(lease_seconds=300)
               if d.branch is None}
    assert {timed.id, untimed.id} <= claimed
    assert 3 < _due_in(database_url, timed.id) < 7  # the deadline, not the 300 s lease
    assert _due_in(database_url, untimed.id) > 290


async def test_branches_of_a_fan_out_no_longer_awaited_are_abandoned(
        pg_persistence: PostgresPersistenceProvider, database_url: str) -> None:
    record = await _waiting(pg_persistence, None, lease=0)  # branches due at once
    fan_out_version = record.version
    update = RecordUpdate.keep(record, status="CANCELLED")
    await pg_persistence.apply(record.id, record.version, update, [])
    due = await pg_persistence.claim_due(lease_seconds=300)
    assert not [d for d in due if d.branch is not None]
    rows = await pg_persistence.list_branches(record.id, fan_out_version)
    assert {r["status"] for r in rows} == {"ABANDONED"}


async def test_a_lost_branch_is_counted_apart_from_its_attempts(
        pg_persistence: PostgresPersistenceProvider) -> None:
    record = await _waiting(pg_persistence, None)
    error = {"type": "WorkerLost", "message": "died"}
    assert await pg_persistence.lose_branch(record.id, record.version, 0, error=error,
                                            lease_seconds=300) == (1, 0)
    assert await pg_persistence.lose_branch(record.id, record.version, 0, error=error,
                                            lease_seconds=300) == (2, 0)
    await pg_persistence.finish_branch(record.id, record.version, 0, status="COMPLETED",
                                       result={}, error=None, attempt=1, duration_ms=1.0)
    assert await pg_persistence.lose_branch(record.id, record.version, 0, error=error,
                                            lease_seconds=300) is None


async def test_the_sweep_claims_only_the_types_it_is_given(
        pg_persistence: PostgresPersistenceProvider) -> None:
    record = await _waiting(pg_persistence, None)  # a Partial workflow and its 2 branches
    async with pg_persistence.connection() as conn:  # both branches' leases run out
        await conn.execute("UPDATE workflow_branches SET due_at = now() - interval '1 second' "
                           "WHERE workflow_id = %s", (record.id,))
    assert await pg_persistence.claim_due(lease_seconds=300, workflow_types=["Other"]) == []
    due = await pg_persistence.claim_due(lease_seconds=300, workflow_types=["Other", "Partial"])
    assert {(d.workflow_id, d.branch) for d in due} == {
        (record.id, None), (record.id, 0), (record.id, 1)}


async def test_due_schedules_of_other_types_are_left_out(
        pg_persistence: PostgresPersistenceProvider) -> None:
    import datetime as dt

    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    for name, workflow_type in (("theirs", "Elsewhere"), ("mine", "Mine")):
        await pg_persistence.upsert_schedule({
            "name": name, "workflow_type": workflow_type, "cron_expression": "0 3 * * *",
            "initial_data": {}, "next_run_at": due, "created_by": None})
    assert [s.name for s in await pg_persistence.due_schedules(10, ["Mine"])] == ["mine"]
    assert len(await pg_persistence.due_schedules(10)) == 2
