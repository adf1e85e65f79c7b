"""Idempotency keys: unique per workflow type, and the engine's own (``ruvon:``) out of a
producer's reach at every door, so no producer can take over a CRON tick or a step's
sub-workflow."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from ruvon_workers import WorkflowBuilder
from ruvon_workers.definitions import load_registry
from ruvon_workers.engine.keys import tick_key
from ruvon_workers.errors import InvalidStateError
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.persistence import MemoryPersistenceProvider
from ruvon_workers.persistence.rows import ScheduleSpec

from ..helpers import FLEET_REGISTRY
from .test_bounded_input import _coordinator, wire

__all__ = ["wire"]

RESERVED = "ruvon:schedule:nightly:2030-01-01T03:00:00+00:00"


async def test_one_key_for_two_workflow_types_starts_two_workflows() -> None:
    coordinator, _ = _coordinator()
    ticked, created = await coordinator.start("Ticked", {}, idempotency_key="order-7")
    spawner, created_too = await coordinator.start("Spawner", {"label": "x"},
                                                   idempotency_key="order-7")
    assert created and created_too and ticked.id != spawner.id
    again, created = await coordinator.start("Ticked", {}, idempotency_key="order-7")
    assert not created and again.id == ticked.id


async def test_the_coordinator_refuses_a_reserved_key_naming_the_field() -> None:
    coordinator, outbox = _coordinator()
    with pytest.raises(InvalidStateError, match=r"^idempotency_key: 'ruvon:schedule:.*"
                                                r"reserved") as info:
        await coordinator.start("Ticked", {}, idempotency_key=RESERVED)
    assert isinstance(info.value, ValueError)
    assert await coordinator.persistence.list_workflows() == [] and outbox.sent == []


def test_the_start_task_dead_letters_a_reserved_key(wire: SimpleNamespace) -> None:
    answer = wire.app.tasks["ruvon.start_workflow"](workflow_type="Ticked", initial_data={},
                                                    idempotency_key=RESERVED)
    assert answer["error"].startswith("idempotency_key: 'ruvon:schedule:")
    (letter,) = wire.run(wire.store.dead_letters())
    assert letter.task == "ruvon.start_workflow" and "reserved" in letter.reason
    assert wire.run(wire.store.list_workflows()) == [] and wire.outbox.sent == []


@pytest.mark.parametrize("front", ["ruvon_workers", "ruvon"])
async def test_the_builders_refuse_a_reserved_key(front: str) -> None:
    if front == "ruvon":
        from ruvon.builder import WorkflowBuilder as RuvonBuilder

        builder: WorkflowBuilder = RuvonBuilder(workflow_registry=FLEET_REGISTRY)
    else:
        builder = WorkflowBuilder(load_registry(FLEET_REGISTRY))
    store = MemoryPersistenceProvider()
    with pytest.raises(ValueError, match=r"idempotency_key: 'ruvon:child:x' starts with "
                                         r"'ruvon:'"):
        await builder.create_workflow("Ticked", {}, persistence_provider=store,
                                      execution_provider=SyncExecutionProvider(),
                                      idempotency_key="ruvon:child:x")
    assert await store.list_workflows() == []


async def test_a_producer_cannot_take_over_a_cron_tick() -> None:
    """A producer that starts a run with the text of a tick's key (the form earlier
    versions used, or the reserved one) does not stop that tick from starting its own."""
    coordinator, _ = _coordinator()
    store = coordinator.persistence
    due = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    await store.upsert_schedule(ScheduleSpec(name="yearly", workflow_type="Ticked",
                                             cron_expression="0 3 1 1 *", initial_data={},
                                             next_run_at=due))
    now = dt.datetime.now(dt.UTC)
    tick = dt.datetime(now.year if (now.month, now.day, now.hour) >= (1, 1, 3)
                       else now.year - 1, 1, 1, 3, tzinfo=dt.UTC)
    key = tick_key("yearly", tick)
    assert key.startswith("ruvon:")
    with pytest.raises(InvalidStateError, match="idempotency_key"):
        await coordinator.start("Ticked", {}, idempotency_key=key)
    hijacker, _ = await coordinator.start("Ticked", {},
                                          idempotency_key=key.removeprefix("ruvon:"))
    assert await coordinator.fire_schedules() == 1
    (schedule,) = await store.list_schedules()
    assert schedule.last_workflow_id not in (None, hijacker.id)
    fired = await store.load_workflow(str(schedule.last_workflow_id))
    assert fired is not None and fired.idempotency_key == key
