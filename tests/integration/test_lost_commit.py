"""A step attempt whose commit loses the compare-and-set undoes what it alone started:
the sub-workflow or FIRE_AND_FORGET run it created is cancelled, the schedule it
registered is removed. What the winning commit refers to (a duplicate delivery of the
same step execution finds the same run by its key) is kept. On both stores."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ruvon_workers.definitions import load_registry
from ruvon_workers.engine import machine
from ruvon_workers.engine.records import WorkflowRecord
from ruvon_workers.fleet.coordinator import Coordinator
from ruvon_workers.fleet.settings import FleetSettings
from ruvon_workers.persistence import MemoryPersistenceProvider, PostgresPersistenceProvider
from ruvon_workers.persistence.base import PersistenceProvider

from ..helpers import FLEET_REGISTRY
from ..unit.test_coordinator_rules import Outbox


@pytest.fixture(params=["memory", "postgres"])
async def coordinator(request: pytest.FixtureRequest) -> AsyncIterator[Coordinator]:
    store: PersistenceProvider
    if request.param == "memory":
        store = MemoryPersistenceProvider()
    else:
        store = PostgresPersistenceProvider(request.getfixturevalue("database_url"),
                                            pool_min_size=1)
    await store.initialize()
    settings = FleetSettings("q", lease_seconds=300, sweep_interval=10, max_countdown=60)
    yield Coordinator(load_registry(FLEET_REGISTRY), store, Outbox(),  # type: ignore[arg-type]
                      settings)
    await store.close()


async def _attempt(coordinator: Coordinator, record: WorkflowRecord) -> Any:
    """One delivery of ``record``'s current step: run it and try to commit."""
    record = copy.deepcopy(record)
    transition = await machine.decide(await coordinator.definition(record), record,
                                      machine.RunStep())
    return await coordinator.commit(record, transition)


def _duplicate_commits_first(coordinator: Coordinator, record: WorkflowRecord,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The next commit is raced by a duplicate delivery of the same step: that one runs
    after the first attempt's side effects (so it finds them by key or name) and commits
    before the first attempt does."""
    store = coordinator.persistence
    apply = store.apply
    raced = False

    async def racing_apply(*args: Any, **kwargs: Any) -> int:
        nonlocal raced
        if not raced:
            raced = True
            report = await _attempt(coordinator, record)
            assert report.applied, report
        return await apply(*args, **kwargs)

    monkeypatch.setattr(store, "apply", racing_apply)


async def test_a_child_started_by_a_commit_that_lost_to_a_cancel_is_cancelled(
        coordinator: Coordinator) -> None:
    parent, _ = await coordinator.start("Parent", {})
    await coordinator.cancel(parent.id, "stop")  # lands while the step runs
    report = await _attempt(coordinator, parent)
    assert not report.applied
    (child,) = await coordinator.persistence.list_workflows(workflow_type="Child")
    assert child.status == "CANCELLED" and child.parent_id == parent.id
    assert (await coordinator.load(parent.id)).status == "CANCELLED"


async def test_a_child_the_winning_duplicate_found_by_its_key_is_kept(
        coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch) -> None:
    parent, _ = await coordinator.start("Parent", {})
    _duplicate_commits_first(coordinator, parent, monkeypatch)
    report = await _attempt(coordinator, parent)
    assert not report.applied  # the duplicate won, with the child this attempt created
    (child,) = await coordinator.persistence.list_workflows(workflow_type="Child")
    assert child.status != "CANCELLED"
    stored = await coordinator.load(parent.id)
    assert stored.status == "PENDING_SUB_WORKFLOW"
    assert stored.runtime.child is not None and stored.runtime.child["id"] == child.id


async def test_a_fire_and_forget_run_of_a_commit_that_lost_is_cancelled(
        coordinator: Coordinator) -> None:
    spawner, _ = await coordinator.start("Spawner", {"label": "x"})
    await coordinator.cancel(spawner.id, "stop")
    assert not (await _attempt(coordinator, spawner)).applied
    (spawned,) = await coordinator.persistence.list_workflows(workflow_type="Ticked")
    assert spawned.status == "CANCELLED"


async def test_a_schedule_registered_by_a_commit_that_lost_is_removed(
        coordinator: Coordinator) -> None:
    scheduler, _ = await coordinator.start("Scheduler", {"label": "x"})
    await coordinator.cancel(scheduler.id, "stop")
    assert not (await _attempt(coordinator, scheduler)).applied
    assert await coordinator.persistence.list_schedules() == []


async def test_a_schedule_the_winning_duplicate_registered_too_is_kept(
        coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler, _ = await coordinator.start("Scheduler", {"label": "x"})
    _duplicate_commits_first(coordinator, scheduler, monkeypatch)
    assert not (await _attempt(coordinator, scheduler)).applied
    (schedule,) = await coordinator.persistence.list_schedules()
    assert schedule.created_by == scheduler.id


async def test_a_schedule_that_was_there_before_the_lost_commit_is_kept(
        coordinator: Coordinator) -> None:
    """Registered by an earlier run of the step: this attempt only found it by name."""
    first, _ = await coordinator.start("Scheduler", {"label": "x"})
    assert (await _attempt(coordinator, first)).applied
    second, _ = await coordinator.start("Scheduler", {"label": "y"})
    await coordinator.cancel(second.id, "stop")
    assert not (await _attempt(coordinator, second)).applied
    (schedule,) = await coordinator.persistence.list_schedules()
    assert schedule.created_by == first.id
