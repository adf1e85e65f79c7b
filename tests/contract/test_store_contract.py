"""The rules every store meets, whatever keeps the data: run against each store in
``conftest.py`` (memory, PostgreSQL on the asyncio and on the blocking driver, SQLite in
memory and in a file).

A new store is done when this file passes against it. PostgreSQL is the
reference: where a rule is not written down in ``persistence/base.py``, what PostgreSQL
does is the rule.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

import pytest

from ruvon_workers.engine.records import Branch, HistoryEntry, RecordUpdate, WorkflowRecord
from ruvon_workers.engine.runtime import Runtime
from ruvon_workers.errors import InvalidStateError, StaleStateError
from ruvon_workers.persistence.base import (
    DEAD_LETTER_PAYLOAD_MAX,
    DueStep,
    PersistenceProvider,
    Reaped,
)
from ruvon_workers.persistence.rows import DeadLetter, Schedule, ScheduleSpec, StepStats
from ruvon_workers.utils.serialization import dumps_bytes

from ..helpers import not_none

Store = PersistenceProvider


def _record(workflow_type: str = "T", *, key: str | None = None, step: str | None = "A",
            state: dict[str, Any] | None = None, workflow_id: str | None = None,
            parent_id: str | None = None) -> WorkflowRecord:
    return WorkflowRecord(id=workflow_id or str(uuid.uuid4()), workflow_type=workflow_type,
                          workflow_version="1", status="ACTIVE", current_step=step,
                          state=state if state is not None else {"n": 0},
                          runtime=Runtime.from_dict({"r": 1}), idempotency_key=key,
                          parent_id=parent_id)


async def _created(store: Store, workflow_type: str = "T", *, due_in: float | None = None,
                   **fields: Any) -> WorkflowRecord:
    record, created = await store.create_workflow(_record(workflow_type, **fields),
                                                  due_in=due_in)
    assert created
    return record


async def _move(store: Store, record: WorkflowRecord, *, history: list[HistoryEntry] | None = None,
                **changes: Any) -> WorkflowRecord:
    """Apply ``changes`` to ``record`` at its version; return the stored row."""
    update = RecordUpdate.keep(record, **changes)
    version = await store.apply(record.id, record.version, update, history or [])
    assert version == record.version + 1
    stored = await store.load_workflow(record.id)
    assert stored is not None
    return stored


# -- workflows ------------------------------------------------------------------------


async def test_create_stores_the_workflow_at_version_zero(store: Store) -> None:
    record = _record(state={"n": 1, "nested": {"a": [1, 2]}})
    stored, created = await store.create_workflow(record)
    assert created and stored.id == record.id and stored.version == 0
    assert stored.created_at is not None and stored.updated_at is not None
    loaded = await store.load_workflow(record.id)
    assert loaded is not None
    assert (loaded.workflow_type, loaded.workflow_version, loaded.status, loaded.current_step,
            loaded.state, loaded.runtime.to_dict(), loaded.version, loaded.idempotency_key,
            loaded.parent_id, loaded.error, loaded.completed_at) == (
        "T", "1", "ACTIVE", "A", {"n": 1, "nested": {"a": [1, 2]}}, {"r": 1}, 0, None,
        None, None, None)
    (first,) = await store.history(record.id)
    assert (first.step, first.status, first.attempt, first.version) == ("A", "CREATED", 1, 0)


async def test_a_child_names_its_parent(store: Store) -> None:
    parent = await _created(store)
    child = await _created(store, "Child", parent_id=parent.id)
    loaded = await store.load_workflow(child.id)
    assert loaded is not None and loaded.parent_id == parent.id


async def test_an_idempotency_key_returns_the_existing_workflow(store: Store) -> None:
    first = await _created(store, key="order-1", state={"n": 1})
    again, created = await store.create_workflow(_record(key="order-1", state={"n": 2}))
    assert not created
    assert (again.id, again.state, again.version) == (first.id, {"n": 1}, 0)
    assert [r.id for r in await store.list_workflows()] == [first.id]


async def test_an_idempotency_key_is_scoped_by_workflow_type(store: Store) -> None:
    """The same key for two workflow types makes two workflows; for one type, one."""
    orders = await _created(store, "Orders", key="k-1")
    refunds, created = await store.create_workflow(_record("Refunds", key="k-1"))
    assert created and refunds.id != orders.id
    again, created = await store.create_workflow(_record("Refunds", key="k-1"))
    assert not created and again.id == refunds.id
    again, created = await store.create_workflow(_record("Orders", key="k-1"))
    assert not created and again.id == orders.id
    assert len(await store.list_workflows()) == 2


async def test_concurrent_creates_with_one_key_make_one_workflow(store: Store) -> None:
    made = await asyncio.gather(*(store.create_workflow(_record(key="k", state={"n": i}))
                                  for i in range(10)))
    assert len({record.id for record, _ in made}) == 1
    assert [created for _, created in made].count(True) == 1
    assert len(await store.list_workflows()) == 1


async def test_the_same_start_sent_twice_returns_the_first(store: Store) -> None:
    first = await _created(store, state={"n": 1})
    again, created = await store.create_workflow(
        _record(workflow_id=first.id, state={"n": 2}))
    assert not created and (again.id, again.state) == (first.id, {"n": 1})


async def test_an_id_held_by_another_workflow_is_refused(store: Store) -> None:
    first = await _created(store, key="mine")
    with pytest.raises(InvalidStateError, match="already taken"):
        await store.create_workflow(_record("Other", workflow_id=first.id))
    with pytest.raises(InvalidStateError, match="already taken"):
        await store.create_workflow(_record(workflow_id=first.id, key="another"))
    loaded = await store.load_workflow(first.id)
    assert loaded is not None and loaded.workflow_type == "T"
    assert len(await store.list_workflows()) == 1


async def test_an_unknown_id_loads_as_none(store: Store) -> None:
    assert await store.load_workflow(str(uuid.uuid4())) is None
    assert await store.history(str(uuid.uuid4())) == []


async def test_apply_is_a_compare_and_set(store: Store) -> None:
    record = await _created(store)
    update = RecordUpdate("WAITING_HUMAN", "B", {"n": 1}, Runtime.from_dict({"r": 2}),
                          error={"message": "m"})
    assert await store.apply(record.id, 0, update, []) == 1
    moved = await store.load_workflow(record.id)
    assert moved is not None
    assert (moved.status, moved.current_step, moved.state, moved.runtime.to_dict(), moved.error,
            moved.version) == ("WAITING_HUMAN", "B", {"n": 1}, {"r": 2},
                               {"message": "m"}, 1)

    stale = RecordUpdate("COMPLETED", None, {"n": 99}, Runtime())
    with pytest.raises(StaleStateError) as info:
        await store.apply(record.id, 0, stale, [HistoryEntry("B", "COMPLETED")])
    assert (info.value.expected_version, info.value.actual_version) == (0, 1)
    after = await store.load_workflow(record.id)
    assert after is not None and (after.status, after.state, after.version) == (
        "WAITING_HUMAN", {"n": 1}, 1)
    assert [h.status for h in await store.history(record.id)] == ["CREATED"]


async def test_apply_to_an_unknown_workflow_is_stale(store: Store) -> None:
    update = RecordUpdate("ACTIVE", "A", {}, Runtime())
    with pytest.raises(StaleStateError) as info:
        await store.apply(str(uuid.uuid4()), 0, update, [])
    assert info.value.actual_version is None


async def test_concurrent_writers_exactly_one_wins(store: Store) -> None:
    base = await _created(store)

    def update(label: str) -> RecordUpdate:
        return RecordUpdate.keep(base, state={"label": label})

    results = await asyncio.gather(
        *(store.apply(base.id, base.version, update(f"writer-{i}"),
                      [HistoryEntry("A", "COMPLETED")]) for i in range(8)),
        return_exceptions=True)
    winners = [r for r in results if isinstance(r, int)]
    losers = [r for r in results if isinstance(r, StaleStateError)]
    assert winners == [1] and len(losers) == 7
    assert {(e.expected_version, e.actual_version) for e in losers} == {(0, 1)}
    stored = await store.load_workflow(base.id)
    assert stored is not None
    assert stored.state == {"label": f"writer-{results.index(winners[0])}"}
    # Only the winner's history row landed.
    assert [h.status for h in await store.history(base.id)] == ["CREATED", "COMPLETED"]


async def test_a_terminal_status_stamps_completed_at(store: Store) -> None:
    record = await _created(store)
    moved = await _move(store, record, status="PENDING_ASYNC")
    assert moved.completed_at is None
    done = await _move(store, moved, status="COMPLETED", current_step=None)
    assert done.completed_at is not None and done.updated_at is not None
    assert done.updated_at >= record.updated_at  # type: ignore[operator]


async def test_history_rows_come_back_in_order_with_their_version(store: Store) -> None:
    record = await _created(store)
    moved = await _move(store, record, current_step="B", history=[
        HistoryEntry("A", "COMPLETED", 2, duration_ms=1.5, detail={"d": 1}),
        HistoryEntry("B", "RETRYING", 1, error={"message": "boom"})])
    await _move(store, moved, status="COMPLETED", history=[HistoryEntry("B", "FAILED", 3)])
    rows = await store.history(record.id)
    assert [(h.step, h.status, h.attempt, h.version, h.duration_ms, h.error, h.detail)
            for h in rows] == [
        ("A", "CREATED", 1, 0, None, None, None),
        ("A", "COMPLETED", 2, 1, 1.5, None, {"d": 1}),
        ("B", "RETRYING", 1, 1, None, {"message": "boom"}, None),
        ("B", "FAILED", 3, 2, None, None, None)]
    assert all(h.created_at is not None for h in rows)


async def test_a_history_rows_detail_keeps_what_the_step_changed(store: Store) -> None:
    record = await _created(store)
    detail = {"changed": {"amount": 12.5, "order": {"lines": [1, 2], "status": "paid"},
                          "flag": False, "none": None,
                          "blob": {"truncated": True, "bytes": 5002}},
              "removed": ["draft"], "next": "Ship"}
    await _move(store, record, current_step="Ship",
                history=[HistoryEntry("A", "COMPLETED", 1, detail=detail)])
    (row,) = [h for h in await store.history(record.id) if h.status == "COMPLETED"]
    assert row.detail == detail


async def test_list_workflows_filters_by_status_and_type(store: Store) -> None:
    a1 = await _created(store, "A")
    a2 = await _created(store, "A")
    b1 = await _created(store, "B")
    await asyncio.sleep(0.01)
    a2 = await _move(store, a2, status="COMPLETED")  # updated last: listed first
    assert [r.id for r in await store.list_workflows()] == [a2.id, b1.id, a1.id]
    assert [r.id for r in await store.list_workflows(status="ACTIVE")] == [b1.id, a1.id]
    assert [r.id for r in await store.list_workflows(workflow_type="A")] == [a2.id, a1.id]
    assert [r.id for r in await store.list_workflows(status="ACTIVE", workflow_type="A")
            ] == [a1.id]
    assert [r.id for r in await store.list_workflows(limit=1)] == [a2.id]
    assert await store.list_workflows(status="FAILED") == []


# -- the recovery sweep's leases ------------------------------------------------------


def _claimed(due: list[DueStep]) -> set[tuple[str, int | None]]:
    return {(d.workflow_id, d.branch) for d in due}


async def test_claim_due_takes_due_steps_once_and_leases_them(store: Store) -> None:
    due = await _created(store, due_in=-1)
    later = await _created(store, due_in=300)
    never = await _created(store)  # no due time: nothing to recover
    claimed = await store.claim_due(lease_seconds=300)
    assert claimed == [DueStep(due.id, "T", "A", 0)]
    assert await store.claim_due(lease_seconds=300) == []  # leased now; the others not due
    assert {later.id, never.id}.isdisjoint(_claimed(claimed))


async def test_a_claim_comes_due_again_when_its_lease_passes(store: Store) -> None:
    record = await _created(store, due_in=-1)
    assert _claimed(await store.claim_due(lease_seconds=0.5)) == {(record.id, None)}
    assert await store.claim_due(lease_seconds=0.5) == []
    await asyncio.sleep(1.0)
    assert _claimed(await store.claim_due(lease_seconds=0.5)) == {(record.id, None)}


async def test_claim_due_looks_at_waiting_statuses_only(store: Store) -> None:
    active = await _created(store)
    sub = await _created(store)
    waiting = await _created(store)
    done = await _created(store)
    await _move(store, active, due_in=-1)
    await _move(store, sub, status="PENDING_SUB_WORKFLOW", due_in=-1)
    await _move(store, waiting, status="WAITING_HUMAN", due_in=-1)
    await _move(store, done, status="COMPLETED", due_in=-1)
    due = await store.claim_due(lease_seconds=300)
    assert _claimed(due) == {(active.id, None), (sub.id, None)}
    assert {d.version for d in due} == {1}


async def test_claim_due_takes_only_the_types_it_is_given(store: Store) -> None:
    mine = await _created(store, "Mine", due_in=-1)
    theirs = await _created(store, "Theirs", due_in=-1)
    claimed = await store.claim_due(lease_seconds=300, workflow_types=["Mine", "Other"])
    assert _claimed(claimed) == {(mine.id, None)}
    assert await store.claim_due(lease_seconds=300, workflow_types=["Other"]) == []
    # The other type's row stayed due for a worker that runs it.
    assert _claimed(await store.claim_due(lease_seconds=300)) == {(theirs.id, None)}


async def test_claim_due_takes_at_most_limit(store: Store) -> None:
    for _ in range(3):
        await _created(store, due_in=-1)
    first = await store.claim_due(lease_seconds=300, limit=2)
    rest = await store.claim_due(lease_seconds=300, limit=2)
    assert len(first) == 2 and len(rest) == 1
    assert _claimed(first).isdisjoint(_claimed(rest))


async def test_extend_due_pushes_a_claimed_steps_lease(store: Store) -> None:
    long = await _created(store, due_in=-1)
    moved_on = await _created(store, due_in=-1)
    claimed = {d.workflow_id: d for d in await store.claim_due(lease_seconds=0.5)}
    assert set(claimed) == {long.id, moved_on.id}
    await _move(store, moved_on, due_in=0.5)  # version 1: the claim's version 0 is stale
    await store.extend_due(claimed[long.id], 300)
    await store.extend_due(claimed[moved_on.id], 300)  # changes nothing
    await asyncio.sleep(1.0)
    assert _claimed(await store.claim_due(lease_seconds=300)) == {(moved_on.id, None)}


# -- PARALLEL fan-outs ----------------------------------------------------------------

BRANCHES = [Branch(0, "b0"), Branch(1, "b1", item={"start": 0, "items": [1, 2]})]


async def _fanned_out(store: Store, *, lease: float = 300, deadline: float | None = None,
                      workflow_type: str = "T", branches: list[Branch] | None = None,
                      due_in: float = 300) -> WorkflowRecord:
    """A workflow waiting (PENDING_ASYNC) on a fan-out written at its next version."""
    record = await _created(store, workflow_type)
    await store.create_fanout(record.id, record.version + 1, "A", branches or BRANCHES, lease)
    runtime = Runtime(parallel={"step": "A", "total": 2, "deadline": deadline})
    return await _move(store, record, status="PENDING_ASYNC", runtime=runtime, due_in=due_in)


async def test_a_fan_out_starts_with_every_branch_pending(store: Store) -> None:
    record = await _fanned_out(store)
    loaded, branch = await store.load_branch(record.id, record.version, 1)
    assert loaded is not None and loaded.version == record.version
    assert branch == Branch(1, "b1", "PENDING", 0, item={"start": 0, "items": [1, 2]})
    assert await store.get_branch(record.id, record.version, 0) == Branch(0, "b0", "PENDING", 0)
    assert await store.get_branch(record.id, record.version, 2) is None
    assert await store.get_branch(record.id, record.version + 1, 0) is None
    assert (await store.load_branch(record.id, record.version, 5))[1] is None
    assert await store.load_branch(str(uuid.uuid4()), 1, 0) == (None, None)
    assert await store.list_branches(record.id, record.version) == [
        Branch(0, "b0", "PENDING", 0), Branch(1, "b1", "PENDING", 0)]  # no item: the outcome
    assert await store.list_branches(record.id, record.version + 1) == []


async def test_finish_branch_counts_down_once_per_branch(store: Store) -> None:
    record = await _fanned_out(store)
    v = record.version
    assert await store.finish_branch(record.id, v, 1, status="FAILED", result=None,
                                     error={"message": "no"}, attempt=2,
                                     duration_ms=3.5) == 1
    assert await store.finish_branch(record.id, v, 1, status="COMPLETED", result={"x": 1},
                                     error=None, attempt=3, duration_ms=1.0) is None
    assert await store.finish_branch(record.id, v, 0, status="COMPLETED", result={"x": 0},
                                     error=None, attempt=1, duration_ms=2.0) == 0
    assert await store.finish_branch(record.id, v, 7, status="COMPLETED", result=None,
                                     error=None, attempt=1, duration_ms=None) is None
    rows = await store.list_branches(record.id, v)
    assert [(r.idx, r.status, r.attempt, r.result, r.error, r.duration_ms) for r in rows] == [
        (0, "COMPLETED", 1, {"x": 0}, None, 2.0),
        (1, "FAILED", 2, None, {"message": "no"}, 3.5)]
    assert not_none(await store.get_branch(record.id, v, 1)).status == "FAILED"


async def test_a_fan_out_written_twice_keeps_its_count(store: Store) -> None:
    record = await _fanned_out(store)
    await store.finish_branch(record.id, record.version, 0, status="COMPLETED", result={},
                              error=None, attempt=1, duration_ms=1.0)
    await store.create_fanout(record.id, record.version, "A", BRANCHES, 300)  # redelivery
    rows = await store.list_branches(record.id, record.version)
    assert [r.status for r in rows] == ["COMPLETED", "PENDING"]


async def test_concurrent_branches_count_down_to_zero_exactly_once(store: Store) -> None:
    many = [Branch(i, f"b{i}") for i in range(20)]
    record = await _fanned_out(store, branches=many)

    async def finish(idx: int) -> int | None:
        return await store.finish_branch(
            record.id, record.version, idx, status="COMPLETED", result={"i": idx},
            error=None, attempt=1, duration_ms=1.0)

    remaining = await asyncio.gather(*(finish(i) for i in range(20)),
                                     *(finish(i) for i in range(20)))  # and duplicates
    counted = [r for r in remaining if r is not None]
    assert sorted(counted) == list(range(20))  # each branch once; one of them saw 0
    rows = await store.list_branches(record.id, record.version)
    assert [r.result for r in rows] == [{"i": i} for i in range(20)]


async def test_retry_branch_moves_the_attempt_forward_only(store: Store) -> None:
    record = await _fanned_out(store)
    v = record.version
    error = {"message": "try again"}
    assert await store.retry_branch(record.id, v, 0, attempt=1, error=error, delay=300)
    assert not await store.retry_branch(record.id, v, 0, attempt=1, error=error, delay=300)
    assert await store.get_branch(record.id, v, 0) == Branch(0, "b0", "PENDING", 1)
    assert (await store.list_branches(record.id, v))[0].error == error
    await store.finish_branch(record.id, v, 0, status="COMPLETED", result={}, error=None,
                              attempt=2, duration_ms=1.0)
    assert not await store.retry_branch(record.id, v, 0, attempt=3, error=error, delay=0)
    assert not await store.retry_branch(record.id, v, 9, attempt=1, error=error, delay=0)


async def test_a_retried_branch_comes_due_after_its_delay(store: Store) -> None:
    record = await _fanned_out(store)
    v = record.version
    assert await store.retry_branch(record.id, v, 1, attempt=1, error={}, delay=-1)
    due = await store.claim_due(lease_seconds=300)
    assert due == [DueStep(record.id, "T", "A", v, branch=1)]
    assert await store.claim_due(lease_seconds=300) == []  # leased like a step


async def test_a_lost_branch_is_counted_apart_from_its_attempts(store: Store) -> None:
    record = await _fanned_out(store)
    error = {"type": "WorkerLost", "message": "died"}
    assert await store.lose_branch(record.id, record.version, 0, error=error,
                                   lease_seconds=300) == (1, 0)
    assert await store.lose_branch(record.id, record.version, 0, error=error,
                                   lease_seconds=300) == (2, 0)
    assert (await store.list_branches(record.id, record.version))[0].error == error
    await store.finish_branch(record.id, record.version, 0, status="COMPLETED",
                              result={}, error=None, attempt=1, duration_ms=1.0)
    assert await store.lose_branch(record.id, record.version, 0, error=error,
                                   lease_seconds=300) is None


async def test_close_fanout_abandons_the_branches_still_pending(store: Store) -> None:
    record = await _fanned_out(store, lease=0)
    await store.finish_branch(record.id, record.version, 0, status="COMPLETED", result={},
                              error=None, attempt=1, duration_ms=1.0)
    await store.close_fanout(record.id, record.version)
    rows = await store.list_branches(record.id, record.version)
    assert [r.status for r in rows] == ["COMPLETED", "ABANDONED"]
    assert await store.finish_branch(record.id, record.version, 1, status="COMPLETED",
                                     result={}, error=None, attempt=1,
                                     duration_ms=1.0) is None
    assert [d for d in await store.claim_due(lease_seconds=300) if d.branch is not None] == []


async def test_the_sweep_claims_branches_whose_lease_passed(store: Store) -> None:
    record = await _fanned_out(store, lease=0, workflow_type="Partial")  # due at once
    await asyncio.sleep(0.01)
    assert await store.claim_due(lease_seconds=300, workflow_types=["Other"]) == []
    due = await store.claim_due(lease_seconds=300, workflow_types=["Other", "Partial"])
    assert {(d.workflow_id, d.step, d.version, d.branch) for d in due} == {
        (record.id, "A", record.version, 0), (record.id, "A", record.version, 1)}
    assert await store.claim_due(lease_seconds=300) == []


async def test_extend_due_pushes_a_claimed_branchs_lease(store: Store) -> None:
    record = await _fanned_out(store, lease=0)
    await asyncio.sleep(0.01)
    claimed = await store.claim_due(lease_seconds=0.5)
    assert _claimed(claimed) == {(record.id, 0), (record.id, 1)}
    await store.extend_due(next(d for d in claimed if d.branch == 0), 300)
    await asyncio.sleep(1.0)
    assert _claimed(await store.claim_due(lease_seconds=300)) == {(record.id, 1)}


async def test_branches_of_a_fan_out_no_longer_awaited_are_abandoned(store: Store) -> None:
    record = await _fanned_out(store, lease=0)  # branches due at once
    await _move(store, record, status="CANCELLED", current_step=None)
    await asyncio.sleep(0.01)
    due = await store.claim_due(lease_seconds=300)
    assert [d for d in due if d.branch is not None] == []
    rows = await store.list_branches(record.id, record.version)
    assert {r.status for r in rows} == {"ABANDONED"}


async def test_a_fan_out_with_a_timeout_comes_due_at_its_deadline(store: Store) -> None:
    timed = await _fanned_out(store, deadline=time.time() + 0.5, due_in=-1)
    untimed = await _fanned_out(store, due_in=-1)
    claimed = await store.claim_due(lease_seconds=300)
    assert _claimed(claimed) == {(timed.id, None), (untimed.id, None)}
    assert await store.claim_due(lease_seconds=300) == []
    await asyncio.sleep(1.5)  # past the deadline (and its half-second grace)
    assert _claimed(await store.claim_due(lease_seconds=300)) == {(timed.id, None)}


# -- CRON schedules -------------------------------------------------------------------


def _spec(name: str = "nightly", *, cron: str = "0 3 * * *", workflow_type: str = "T",
          at: dt.datetime | None = None, data: dict[str, Any] | None = None,
          created_by: str | None = None) -> ScheduleSpec:
    return ScheduleSpec(name, workflow_type, cron, data if data is not None else {"a": 1},
                        at or dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), created_by)


async def test_a_schedule_is_stored_by_name(store: Store) -> None:
    creator = await _created(store)
    at = dt.datetime(2031, 1, 2, 3, 0, tzinfo=dt.UTC)
    assert await store.upsert_schedule(_spec("b-second", at=at, created_by=creator.id))
    assert await store.upsert_schedule(_spec("a-first", at=at))
    # Stored again by name: an update, said so (a lost commit removes only what it made).
    assert not await store.upsert_schedule(_spec("a-first", at=at))
    first, second = await store.list_schedules()  # by name
    assert isinstance(second, Schedule)
    assert (second.name, second.workflow_type, second.cron_expression, second.initial_data,
            second.next_run_at, second.last_run_at, second.last_workflow_id, second.runs,
            second.created_by) == ("b-second", "T", "0 3 * * *", {"a": 1}, at, None, None, 0,
                                   creator.id)
    assert first.name == "a-first" and first.created_by is None
    assert second.created_at is not None


async def test_storing_a_schedule_again_updates_it(store: Store) -> None:
    creator = await _created(store)
    at = dt.datetime(2031, 1, 2, 3, 0, tzinfo=dt.UTC)
    await store.upsert_schedule(_spec(at=at, created_by=creator.id))
    # The same cron expression keeps the tick it waits for; the rest is replaced.
    await store.upsert_schedule(_spec(at=at + dt.timedelta(days=1), workflow_type="U",
                                      data={"b": 2}, created_by=None))
    (kept,) = await store.list_schedules()
    assert (kept.workflow_type, kept.initial_data, kept.next_run_at, kept.created_by) == (
        "U", {"b": 2}, at, creator.id)
    # A new cron expression takes the new tick.
    later = at + dt.timedelta(days=2)
    await store.upsert_schedule(_spec(cron="0 4 * * *", at=later))
    (changed,) = await store.list_schedules()
    assert (changed.cron_expression, changed.next_run_at) == ("0 4 * * *", later)


async def test_a_schedule_can_be_given_as_a_mapping(store: Store) -> None:
    at = dt.datetime(2031, 1, 2, 3, 0, tzinfo=dt.UTC)
    await store.upsert_schedule({"name": "m", "workflow_type": "T", "cron_expression": "0 3 * * *",
                                 "initial_data": {"a": 1}, "next_run_at": at,
                                 "created_by": None})
    (stored,) = await store.list_schedules()
    assert (stored.name, stored.initial_data, stored.next_run_at) == ("m", {"a": 1}, at)


async def test_due_schedules_are_those_whose_tick_came(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    await store.upsert_schedule(_spec("later", at=now + dt.timedelta(hours=1)))
    await store.upsert_schedule(_spec("recent", at=now - dt.timedelta(seconds=5)))
    await store.upsert_schedule(_spec("oldest", at=now - dt.timedelta(hours=1)))
    due = await store.due_schedules()
    assert [s.name for s in due] == ["oldest", "recent"]  # the earliest first
    assert all(isinstance(s, Schedule) and s.runs == 0 for s in due)
    assert [s.name for s in await store.due_schedules(1)] == ["oldest"]


async def test_due_schedules_of_other_types_are_left_out(store: Store) -> None:
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    for name, workflow_type in (("theirs", "Elsewhere"), ("mine", "Mine")):
        await store.upsert_schedule(_spec(name, workflow_type=workflow_type, at=due))
    assert [s.name for s in await store.due_schedules(10, ["Mine"])] == ["mine"]
    assert len(await store.due_schedules(10)) == 2


async def test_advance_schedule_is_a_compare_and_set_on_the_tick(store: Store) -> None:
    tick = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    fired = tick + dt.timedelta(minutes=3)
    following = tick + dt.timedelta(days=1)
    started = await _created(store)
    await store.upsert_schedule(_spec(at=tick))
    assert await store.advance_schedule("nightly", tick, following, started.id, fired)
    assert not await store.advance_schedule("nightly", tick, following, None, fired)
    assert not await store.advance_schedule("nowhere", tick, following, None, fired)
    (schedule,) = await store.list_schedules()
    assert (schedule.next_run_at, schedule.last_run_at, schedule.last_workflow_id,
            schedule.runs) == (following, fired, started.id, 1)
    assert await store.due_schedules() == []
    # A tick that could not start its workflow moves on all the same.
    assert await store.advance_schedule("nightly", following, following + dt.timedelta(days=1),
                                        None, following)
    (schedule,) = await store.list_schedules()
    assert (schedule.last_workflow_id, schedule.runs) == (None, 2)


async def test_delete_schedule(store: Store) -> None:
    await store.upsert_schedule(_spec("gone"))
    await store.upsert_schedule(_spec("kept"))
    assert await store.delete_schedule("gone")
    assert not await store.delete_schedule("gone")
    assert [s.name for s in await store.list_schedules()] == ["kept"]


# -- dead letters ---------------------------------------------------------------------


async def test_a_definition_snapshot_is_stored_once_per_fingerprint(store: Store) -> None:
    snapshot = {"workflow": {"workflow_type": "T", "steps": [{"name": "A"}]},
                "state_model_path": "m.S"}
    assert await store.load_definition("f1") is None
    await store.save_definition("f1", "T", "1", snapshot)
    # The first one stands: a fingerprint names one definition for good.
    await store.save_definition("f1", "T", "1", {"workflow": {"changed": True}})
    assert await store.load_definition("f1") == snapshot
    await store.save_definition("f2", "T", "2", {"workflow": {}})
    assert await store.load_definition("f2") == {"workflow": {}}


async def test_dead_letters_are_listed_newest_first(store: Store) -> None:
    for i in range(3):
        await store.record_dead_letter(f"task-{i}", f"w-{i}" if i else None, f"reason {i}",
                                       {"i": i, "at": [1, "x"]})
    rows = await store.dead_letters()
    assert all(isinstance(r, DeadLetter) for r in rows)
    assert [(r.task, r.workflow_id, r.reason, r.payload) for r in rows] == [
        ("task-2", "w-2", "reason 2", {"i": 2, "at": [1, "x"]}),
        ("task-1", "w-1", "reason 1", {"i": 1, "at": [1, "x"]}),
        ("task-0", None, "reason 0", {"i": 0, "at": [1, "x"]})]
    assert rows[0].id > rows[1].id > rows[2].id
    assert all(r.created_at is not None for r in rows)
    assert [r.task for r in await store.dead_letters(limit=1)] == ["task-2"]


async def test_a_dead_letter_holding_nul_is_recorded(store: Store) -> None:
    await store.record_dead_letter("t\x00", "w\x00", "bad \x00 input" + "!" * 3000,
                                   {"k\x00": ["v\x00", {"deep": "\x00"}], "n": None})
    (row,) = await store.dead_letters()
    assert (row.task, row.workflow_id) == ("t\ufffd", "w\ufffd")
    assert row.reason == ("bad \ufffd input" + "!" * 3000)[:2000]
    assert row.payload == {"k\ufffd": ["v\ufffd", {"deep": "\ufffd"}], "n": None}


async def test_a_huge_dead_letter_payload_holding_nul_is_kept_as_an_excerpt(
        store: Store) -> None:
    payload = {"initial_data": {"note\x00": "a\x00b" * 100_000, "blob": "x" * 1_000_000}}
    await store.record_dead_letter("ruvon.start_workflow", None, "too big", payload)
    (row,) = await store.dead_letters()
    assert row.payload["truncated"] is True
    assert row.payload["size"] == len(dumps_bytes(payload))  # the payload as it came
    assert row.payload["excerpt"].startswith('{"initial_data":{"note\\u0000":"a\\u0000b')
    assert len(dumps_bytes(row.payload)) <= DEAD_LETTER_PAYLOAD_MAX


async def test_a_dead_letter_payload_json_cannot_hold_is_kept_as_text(store: Store) -> None:
    await store.record_dead_letter(None, None, "odd", {"x": {1, 2} | {object}})
    await store.record_dead_letter(None, None, "none", None)
    none, odd = await store.dead_letters()
    assert none.payload is None
    assert isinstance(odd.payload, str) and odd.payload.startswith("{'x': {")


# -- statistics -----------------------------------------------------------------------


async def test_count_by_status(store: Store) -> None:
    assert await store.count_by_status() == {}
    for _ in range(2):
        await _created(store)
    done = await _created(store, "Other")
    await _move(store, done, status="COMPLETED")
    assert await store.count_by_status() == {"ACTIVE": 2, "COMPLETED": 1}


async def test_step_durations_summarise_completed_steps(store: Store) -> None:
    one = await _created(store)
    two = await _created(store)
    other = await _created(store, "Other")

    def done(step: str, ms: float) -> HistoryEntry:
        return HistoryEntry(step, "COMPLETED", duration_ms=ms)

    one = await _move(store, one, history=[done("A", 10), done("A", 20)])
    two = await _move(store, two, history=[done("B", 5), HistoryEntry("C", "FAILED",
                                                                      duration_ms=999)])
    await _move(store, one, history=[done("A", 40), done("C", 7)])
    await _move(store, two, history=[done("A", 30)])
    await _move(store, other, history=[done("A", 1000)])
    stats = await store.step_durations("T")
    assert all(isinstance(s, StepStats) for s in stats)
    # In the order the steps first completed; percentiles interpolate (percentile_cont).
    assert [(s.step, s.n) for s in stats] == [("A", 4), ("B", 1), ("C", 1)]
    a, b, c = stats
    assert (a.mean_ms, a.p50_ms, a.p95_ms, a.max_ms) == pytest.approx((25, 25, 38.5, 40))
    assert (b.mean_ms, b.p50_ms, b.p95_ms, b.max_ms) == pytest.approx((5, 5, 5, 5))
    assert c.max_ms == pytest.approx(7)
    assert await store.step_durations("Nothing") == []


# -- pinning --------------------------------------------------------------------------


async def test_pinned_runs_a_steps_queries_as_usual(store: Store) -> None:
    record = await _created(store)
    with store.pinned():
        loaded = await store.load_workflow(record.id)
        with store.pinned():  # nested: the same connection
            version = await store.apply(record.id, 0, RecordUpdate.keep(record, state={"n": 5}),
                                        [HistoryEntry("A", "COMPLETED")])
        history = await store.history(record.id)
    assert loaded is not None and loaded.id == record.id and version == 1
    assert [h.status for h in history] == ["CREATED", "COMPLETED"]
    after = await store.load_workflow(record.id)  # and queries after the block work
    assert after is not None and after.state == {"n": 5}


# -- workers: leases that follow them ----------------------------------------------------


async def _due_ids(store: Store) -> list[tuple[str, int | None]]:
    return sorted(((d.workflow_id, d.branch) for d in await store.claim_due(lease_seconds=300)),
                  key=lambda due: (due[0], -1 if due[1] is None else due[1]))


async def test_a_beat_renews_what_the_worker_holds_as_it_took_it(store: Store) -> None:
    held = await _created(store, due_in=0.2)
    moved_on = await _created(store, due_in=0.2)
    await store.beat("w1", [(held.id, held.version, None),
                            (moved_on.id, moved_on.version + 7, None)], lease_seconds=300)
    await asyncio.sleep(0.3)
    # The held step is renewed; a step held at a version it has left is not.
    assert await _due_ids(store) == [(moved_on.id, None)]


async def test_a_beat_renews_the_later_steps_the_held_message_is_running(
        store: Store) -> None:
    # The task holding the message of version v runs the steps after it (continuation):
    # the run's current step, at a later version, keeps its lease.
    record = await _created(store, due_in=0.2)
    later = await _move(store, await _move(store, record, due_in=0.2), due_in=0.2)
    await store.beat("w1", [(record.id, record.version, None)], lease_seconds=300)
    await asyncio.sleep(0.3)
    assert await _due_ids(store) == []
    await store.beat("gone", [(record.id, later.version, None)], lease_seconds=300)
    await asyncio.sleep(0.2)
    assert (await store.reap_workers(silent_for=0.1, window=0)).made_due == 1
    assert await _due_ids(store) == [(record.id, None)]


async def test_a_silent_workers_steps_are_due_at_once(store: Store) -> None:
    taken = await _created(store, due_in=300)
    alive = await _created(store, due_in=300)
    await store.beat("dead", [(taken.id, taken.version, None)], lease_seconds=300)
    await asyncio.sleep(0.6)  # a margin for a loaded machine
    await store.beat("live", [(alive.id, alive.version, None)], lease_seconds=300)
    assert await store.reap_workers(silent_for=0.5, window=0) == Reaped(["dead"], 1, [])
    assert await _due_ids(store) == [(taken.id, None)]
    assert await store.reap_workers(silent_for=0.5, window=0) == Reaped()  # reaped once
    await store.forget_worker("dead")
    await store.forget_worker("live")
    await asyncio.sleep(0.6)
    assert await store.reap_workers(silent_for=0.5, window=0) == Reaped()  # they are gone


async def test_a_silent_workers_messages_come_back_until_it_is_forgotten(
        store: Store) -> None:
    start = {"task": "ruvon.start_workflow", "id": "t-1", "queue": "q", "priority": None,
             "kwargs": {"workflow_type": "T", "initial_data": {"n": "\u00e9"}},
             "eta": "2026-01-01T00:00:00+00:00"}
    await store.beat("dead", [], lease_seconds=300, messages=[start])
    await store.beat("dead", [], lease_seconds=300, messages=[start])  # replaced, not added
    await asyncio.sleep(0.2)
    assert await store.reap_workers(silent_for=0.1, window=0) == Reaped(["dead"], 0, [start])
    assert await store.reap_workers(silent_for=0.1, window=0, retake=30) == Reaped()
    # Its reaper died before sending them again: a later reap takes the worker again.
    await asyncio.sleep(0.2)
    assert await store.reap_workers(silent_for=0.1, window=0, retake=0.1) == Reaped(
        ["dead"], 0, [start])
    await store.forget_worker("dead")
    await asyncio.sleep(0.2)
    assert await store.reap_workers(silent_for=0.1, window=0, retake=0.1) == Reaped()


async def test_a_worker_taken_for_gone_that_beats_again_is_back(store: Store) -> None:
    await store.beat("slow", [], lease_seconds=300)
    await asyncio.sleep(0.6)
    assert (await store.reap_workers(silent_for=0.5, window=0)).workers == ["slow"]
    await store.beat("slow", [], lease_seconds=300)
    assert await store.reap_workers(silent_for=0.5, window=0, retake=0) == Reaped()


async def test_a_silent_workers_retry_is_due_at_its_time_not_before(store: Store) -> None:
    retry_at = time.time() + 0.6
    waiting = await _move(store, await _created(store), due_in=300,
                          runtime=Runtime(retry_at=retry_at))
    await store.beat("dead", [(waiting.id, waiting.version, None)], lease_seconds=300)
    await asyncio.sleep(0.2)
    assert (await store.reap_workers(silent_for=0.1, window=0)).made_due == 1
    assert await _due_ids(store) == []  # its backoff is not cut short
    await asyncio.sleep(0.6)
    assert await _due_ids(store) == [(waiting.id, None)]


async def test_a_step_taken_in_a_workers_last_moments_is_due_too(store: Store) -> None:
    await store.beat("dead", [], lease_seconds=300)
    await asyncio.sleep(0.05)
    just_sent = await _created(store, due_in=300)  # dispatched after its last beat
    await asyncio.sleep(0.2)
    reaped = await store.reap_workers(silent_for=0.1, window=1)
    assert reaped.workers == ["dead"] and reaped.made_due >= 1
    assert (just_sent.id, None) in await _due_ids(store)


async def test_a_silent_workers_branches_are_due_at_once(store: Store) -> None:
    record = await _fanned_out(store, lease=300)
    await store.beat("dead", [(record.id, record.version, 1)], lease_seconds=300)
    await asyncio.sleep(0.2)
    assert await store.reap_workers(silent_for=0.1, window=0) == Reaped(["dead"], 1, [])
    assert await _due_ids(store) == [(record.id, 1)]


async def test_steps_whose_message_is_nowhere_are_due(store: Store) -> None:
    queued = await _created(store, due_in=300)
    held = await _created(store, due_in=300)
    stale_copy = await _move(store, await _created(store, due_in=300), due_in=300)
    taken = await _created(store, due_in=300)  # by a worker that died before its beat
    fanned = await _fanned_out(store, lease=300)
    await store.beat("live", [(held.id, held.version, None)], lease_seconds=300)
    made = await store.due_unaccounted([
        (queued.id, queued.version, None), (stale_copy.id, stale_copy.version - 1, None),
        (fanned.id, fanned.version, 0)])
    assert made == 3  # the taken step, the step with only a stale copy queued, branch 1
    assert set(await _due_ids(store)) == {(taken.id, None), (stale_copy.id, None),
                                          (fanned.id, 1)}


# -- the broker's epoch ------------------------------------------------------------------


async def test_a_brokers_first_epoch_and_the_same_one_again_change_nothing(
        store: Store) -> None:
    await _created(store, due_in=300)
    assert await store.note_broker_epoch("redis://b/0", "e1") == (False, 0)
    assert await store.note_broker_epoch("redis://b/0", "e1") == (False, 0)
    assert await store.note_broker_epoch("redis://other/0", "e9") == (False, 0)
    assert await _due_ids(store) == []


async def test_a_new_epoch_makes_due_all_a_lost_broker_held_but_what_live_workers_hold(
        store: Store) -> None:
    queued = await _created(store, due_in=300)
    running = await _created(store, due_in=300)
    await _move(store, await _created(store), due_in=300,  # retrying in a minute
                runtime=Runtime(retry_at=time.time() + 60))
    fanned = await _fanned_out(store, lease=300)
    ended = await _move(store, await _created(store, due_in=300), status="COMPLETED",
                        current_step=None)
    await store.beat("live", [(running.id, running.version, None),
                              (fanned.id, fanned.version, 0)], lease_seconds=300)
    assert await store.note_broker_epoch("redis://b/0", "e1") == (False, 0)
    changed, made = await store.note_broker_epoch("redis://b/0", "e2")
    # queued, retrying (at its time), the fan-out's join and its branch 1
    assert changed and made == 4
    assert set(await _due_ids(store)) == {(queued.id, None), (fanned.id, None),
                                          (fanned.id, 1)}
    assert ended.id not in {d for d, _ in await _due_ids(store)}
    assert await store.note_broker_epoch("redis://b/0", "e2") == (False, 0)  # noted once


# -- retention ---------------------------------------------------------------------------


async def test_purge_removes_ended_workflows_with_their_rows_and_old_dead_letters(
        store: Store) -> None:
    ended = [await _move(store, await _created(store), status="COMPLETED", current_step=None)
             for _ in range(3)]
    fanned = await _fanned_out(store)
    gone_too = await _move(store, fanned, status="FAILED")
    running = await _created(store)
    await store.record_dead_letter("t", None, "old", {"x": 1})
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    assert await store.purge(later, dry_run=True) == (4, 1)
    assert await store.load_workflow(ended[0].id) is not None  # a dry run removes nothing
    assert await store.purge(later, batch=1) == (4, 1)  # batch by batch, to the end
    for record in [*ended, gone_too]:
        assert await store.load_workflow(record.id) is None
        assert await store.history(record.id) == []
    assert await store.list_branches(gone_too.id, gone_too.version - 1) == []
    assert await store.load_workflow(running.id) is not None  # not ended: kept
    assert await store.dead_letters() == []
    assert await store.purge(later) == (0, 0)


async def test_purge_keeps_what_changed_after_the_cutoff(store: Store) -> None:
    done = await _move(store, await _created(store), status="COMPLETED", current_step=None)
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    assert await store.purge(earlier) == (0, 0)
    assert await store.load_workflow(done.id) is not None


async def test_deleting_the_schedules_a_run_created(store: Store) -> None:
    creator, other = await _created(store), await _created(store)
    await store.upsert_schedule(_spec("b", created_by=creator.id))
    await store.upsert_schedule(_spec("a", created_by=creator.id))
    await store.upsert_schedule(_spec("c", created_by=other.id))
    await store.upsert_schedule(_spec("d"))
    assert await store.delete_schedules_created_by(creator.id) == ["a", "b"]
    assert [s.name for s in await store.list_schedules()] == ["c", "d"]
    assert await store.delete_schedules_created_by(creator.id) == []
