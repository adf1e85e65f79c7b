"""One rule on both paths: what used to differ between in-process execution
(``SyncExecutionProvider``) and the fleet's coordinator now runs through the same engine
transition, and each case is checked on both (and on both stores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ruvon_workers import WorkflowBuilder
from ruvon_workers.errors import WorkflowFailedException
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.fleet.coordinator import Coordinator
from ruvon_workers.fleet.settings import FleetSettings
from ruvon_workers.persistence import MemoryPersistenceProvider

from ..fixtures import drift_steps
from ..helpers import FLEET_REGISTRY, not_none, workflow_yaml, write_registry
from ..unit.test_coordinator_rules import Outbox, _drain

D = "tests.fixtures.drift_steps"

BRANCHES = {
    "GivesUp": f"""
        - name: Checks
          type: PARALLEL
          retry_policy: {{max_attempts: 3, delay_seconds: 0, jitter: false}}
          tasks:
            - {{name: fine, function_path: {D}.fine}}
            - {{name: gives_up, function_path: {D}.gives_up}}
        """,
    "Permanent": f"""
        - name: Checks
          type: PARALLEL
          retry_policy: {{max_attempts: 3, delay_seconds: 0, jitter: false}}
          tasks:
            - {{name: permanent, function_path: {D}.permanent}}
        """,
    "Meet": f"""
        - name: Meet
          type: PARALLEL
          tasks:
            - {{name: a, function_path: {D}.meet}}
            - {{name: b, function_path: {D}.meet}}
            - {{name: c, function_path: {D}.meet}}
            - {{name: d, function_path: {D}.meet}}
        """,
    "Unstorable": f"""
        - name: Wait
          function: {D}.wait_for_unstorable
        - name: After
          function: tests.fixtures.steps.increment
        """,
}


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return write_registry(tmp_path, {name: workflow_yaml(body, wf_type=name)
                                     for name, body in BRANCHES.items()})


def _coordinator(path: Path, store: Any) -> tuple[Coordinator, Outbox]:
    from ruvon_workers.definitions import load_registry

    outbox = Outbox()
    settings = FleetSettings("q", lease_seconds=300, sweep_interval=10, max_countdown=60)
    return Coordinator(load_registry(path), store, outbox, settings), outbox  # type: ignore[arg-type]


async def _in_process(path: Path, store: Any, workflow_type: str, data: dict[str, Any]):
    builder = WorkflowBuilder.from_registry(path)
    return await builder.create_workflow(workflow_type, data, persistence_provider=store,
                                         execution_provider=SyncExecutionProvider())


# -- a PARALLEL branch that fails for good is not retried ----------------------------------

@pytest.mark.parametrize(("workflow_type", "branch"), [("GivesUp", "gives_up"),
                                                         ("Permanent", "permanent")])
async def test_a_branch_failing_for_good_runs_once_in_process(registry_path, persistence,
                                                              workflow_type, branch):
    drift_steps.CALLS.clear()
    wf = await _in_process(registry_path, persistence, workflow_type, {})
    with pytest.raises(WorkflowFailedException, match=f"'{branch}'"):
        await wf.next_step()
    assert wf.status == "FAILED"
    assert drift_steps.CALLS[branch] == 1


@pytest.mark.parametrize(("workflow_type", "branch"), [("GivesUp", "gives_up"),
                                                         ("Permanent", "permanent")])
async def test_a_branch_failing_for_good_runs_once_on_the_fleet(registry_path, persistence,
                                                                workflow_type, branch):
    drift_steps.CALLS.clear()
    coordinator, outbox = _coordinator(registry_path, persistence)
    record, _ = await coordinator.start(workflow_type, {})
    await _drain(coordinator, outbox)
    done = await coordinator.load(record.id)
    assert done.status == "FAILED" and f"'{branch}'" in not_none(done.error)["message"]
    assert drift_steps.CALLS[branch] == 1


# -- in-process PARALLEL runs its branches at once ---------------------------------------

async def test_in_process_branches_run_at_the_same_time(registry_path):
    # Each branch waits at a barrier for the other three: run one after another, the
    # first would wait alone until the barrier broke.
    drift_steps.BARRIER.reset()
    wf = await _in_process(registry_path, MemoryPersistenceProvider(), "Meet", {})
    await wf.next_step()
    assert wf.status == "COMPLETED"
    steps = [h for h in await wf.history() if h.step == "Meet"]
    assert steps[-1].detail["branches"] == 4 and "failed_branches" not in steps[-1].detail


# -- cancel: the sub-workflow, the parent, and a race --------------------------------------

async def _parent_waiting_on_child(store: Any):
    builder = WorkflowBuilder.from_registry(FLEET_REGISTRY)
    parent = await builder.create_workflow("Parent", {"value": 5, "child_mode": "wait"},
                                           persistence_provider=store,
                                           execution_provider=SyncExecutionProvider())
    while parent.status == "ACTIVE":
        await parent.next_step()
    assert parent.status == "WAITING_CHILD_HUMAN_INPUT"  # its child waits for input
    child_id = (parent.record.runtime.child or {})["id"]
    child = await builder.load_workflow(child_id, persistence_provider=store,
                                        execution_provider=SyncExecutionProvider())
    assert child.status == "WAITING_HUMAN"
    return parent, child


async def test_in_process_cancel_of_a_parent_cancels_its_sub_workflow(persistence):
    parent, child = await _parent_waiting_on_child(persistence)
    await parent.cancel("order withdrawn")
    await child.reload()
    assert parent.status == "CANCELLED"
    assert child.status == "CANCELLED"
    assert child.error["message"] == f"parent {parent.id} cancelled: order withdrawn"


async def test_in_process_cancel_of_a_sub_workflow_ends_its_waiting_parent(persistence):
    parent, child = await _parent_waiting_on_child(persistence)
    await child.cancel("not needed")
    await parent.reload()
    assert parent.status == "FAILED_CHILD_WORKFLOW"
    assert not_none(parent.error)["child_status"] == "CANCELLED"


async def test_fleet_cancel_of_a_sub_workflow_ends_its_waiting_parent(persistence):
    coordinator, outbox = _coordinator(FLEET_REGISTRY, persistence)
    record, _ = await coordinator.start("Parent", {"value": 5, "child_mode": "wait"})
    await _drain(coordinator, outbox)
    parent = await coordinator.load(record.id)
    child_id = (parent.runtime.child or {})["id"]
    assert (await coordinator.load(child_id)).status == "WAITING_HUMAN"
    await coordinator.cancel(child_id, "not needed")
    await _drain(coordinator, outbox)
    parent = await coordinator.load(record.id)
    assert parent.status == "FAILED_CHILD_WORKFLOW"
    assert not_none(parent.error)["child_status"] == "CANCELLED"


class Racing(MemoryPersistenceProvider):
    """Another writer moves the row on just before the first write of a cancel."""

    def __init__(self) -> None:
        super().__init__()
        self.races = 0

    async def apply(self, workflow_id, expected_version, update, history):
        if update.status == "CANCELLED" and self.races == 0:
            self.races += 1
            row = await self.load_workflow(workflow_id)
            assert row is not None
            from ruvon_workers.engine.records import RecordUpdate

            await super().apply(workflow_id, row.version, RecordUpdate.keep(row), [])
        return await super().apply(workflow_id, expected_version, update, history)


async def test_in_process_cancel_retries_a_lost_compare_and_set(registry_path):
    store = Racing()
    wf = await _in_process(registry_path, store, "Unstorable", {})
    await wf.cancel("too late")
    assert store.races == 1
    assert wf.status == "CANCELLED"


# -- a value PostgreSQL refuses fails the step, in-process as on the fleet -----------------

async def test_a_value_postgres_refuses_fails_the_step_in_process(registry_path,
                                                                  pg_persistence):
    wf = await _in_process(registry_path, pg_persistence, "Unstorable", {})
    with pytest.raises(WorkflowFailedException, match="cannot be stored"):
        await wf.next_step()
    stored = await pg_persistence.load_workflow(wf.id)
    assert stored.status == "FAILED" and stored.current_step == "Wait"
    assert wf.status == "FAILED"


async def test_a_value_postgres_refuses_fails_the_step_on_the_fleet(registry_path,
                                                                    pg_persistence):
    coordinator, outbox = _coordinator(registry_path, pg_persistence)
    record, _ = await coordinator.start("Unstorable", {})
    await _drain(coordinator, outbox)
    stored = await coordinator.load(record.id)
    assert stored.status == "FAILED" and "cannot be stored" in not_none(stored.error)["message"]
