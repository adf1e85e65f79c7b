"""The fleet coordinator's rules on the in-memory store, messages handled in-process:
lost pool processes, retries of injected steps."""

from __future__ import annotations

from ruvon_workers.definitions import load_registry
from ruvon_workers.engine.keys import spawn_key
from ruvon_workers.engine.records import RecordUpdate
from ruvon_workers.engine.runtime import Runtime
from ruvon_workers.fleet.coordinator import Coordinator
from ruvon_workers.fleet.settings import FleetSettings
from ruvon_workers.persistence import MemoryPersistenceProvider

from ..helpers import FLEET_REGISTRY as REGISTRY
from ..helpers import Outbox


def _coordinator() -> tuple[Coordinator, Outbox]:
    outbox = Outbox()
    settings = FleetSettings("q", lease_seconds=300, sweep_interval=10, max_countdown=60)
    coordinator = Coordinator(load_registry(REGISTRY), MemoryPersistenceProvider(),
                              outbox, settings)  # type: ignore[arg-type]
    return coordinator, outbox


async def _drain(coordinator: Coordinator, outbox: Outbox) -> None:
    while outbox.sent:
        batch, outbox.sent = outbox.sent, []
        for message in batch:
            await coordinator.handle_step(*message)


async def test_a_lost_worker_keeps_the_steps_idempotency_key() -> None:
    coordinator, outbox = _coordinator()
    record, _ = await coordinator.start("Spawner", {"label": "x"})
    first_version = record.version
    outbox.sent.clear()
    # The pool process died mid-step (perhaps after starting the spawned workflow).
    assert await coordinator.worker_lost(record.id, "Spawn", first_version)
    await _drain(coordinator, outbox)
    parent = await coordinator.load(record.id)
    assert parent.status == "COMPLETED"
    spawned = await coordinator.load(parent.state["spawned_id"])
    assert spawned.idempotency_key == spawn_key(record.id, "Spawn", first_version)


async def test_a_step_past_max_worker_lost_fails() -> None:
    coordinator, _ = _coordinator()
    record, _created = await coordinator.start("Ticked", {})
    for _ in range(3):  # max_worker_lost is 2: the third loss is a failed attempt
        current = await coordinator.load(record.id)
        assert await coordinator.worker_lost(record.id, "Tick", current.version)
    failed = await coordinator.load(record.id)
    assert failed.status == "FAILED" and failed.error is not None \
        and failed.error["type"] == "WorkerLost"


async def _failed_in_review(coordinator: Coordinator) -> str:
    """An Inject workflow that failed in its injected Manual_Review step."""
    record, _ = await coordinator.start("Inject", {"amount": 5000})
    runtime = Runtime(completed=["Assess"],
                      inserted={"steps": ["Manual_Review", "Second_Review"], "then": "Finish"})
    update = RecordUpdate("FAILED", "Manual_Review",
                          {**record.state, "risk": "high", "path": ["Assess"]}, runtime,
                          error={"step": "Manual_Review", "type": "RuntimeError",
                                 "message": "reviewer unreachable"})
    await coordinator.persistence.apply(record.id, record.version, update, [])
    return record.id


async def test_retrying_an_injected_step_runs_the_rest_of_the_injection_once() -> None:
    coordinator, outbox = _coordinator()
    workflow_id = await _failed_in_review(coordinator)
    outbox.sent.clear()
    await coordinator.retry(workflow_id)
    await _drain(coordinator, outbox)
    done = await coordinator.load(workflow_id)
    assert done.status == "COMPLETED"
    assert done.state["path"] == ["Assess", "Manual_Review", "Second_Review", "Finish"]


async def test_retrying_from_a_later_step_drops_the_pending_injection() -> None:
    coordinator, outbox = _coordinator()
    workflow_id = await _failed_in_review(coordinator)
    outbox.sent.clear()
    await coordinator.retry(workflow_id, from_step="Finish")
    await _drain(coordinator, outbox)
    done = await coordinator.load(workflow_id)
    assert done.status == "COMPLETED" and done.state["path"] == ["Assess", "Finish"]


async def test_the_sweep_leases_a_long_step_for_its_own_time_limit() -> None:
    import datetime as dt

    outbox = Outbox()
    settings = FleetSettings("q", lease_seconds=5, sweep_interval=1, max_countdown=60)
    store = MemoryPersistenceProvider()
    coordinator = Coordinator(load_registry(REGISTRY), store, outbox,  # type: ignore[arg-type]
                              settings)
    record, _ = await coordinator.start("Hang", {})
    update = RecordUpdate.keep(record, current_step="Stuck", due_in=-1)
    await store.apply(record.id, record.version, update, [])
    assert await coordinator.sweep() == 1
    # Stuck has time_limit_seconds: 1 -> its lease is 1 + 10 (hard-kill grace) + 30 s.
    due = store._due[record.id]
    assert due is not None
    left = (due - dt.datetime.now(dt.UTC)).total_seconds()
    assert 35 < left <= 41


async def test_a_result_the_database_refuses_fails_the_step_instead_of_looping() -> None:
    from ruvon_workers.errors import UnstorableValue

    class Refusing(MemoryPersistenceProvider):
        """Refuses the write of a state with ``ran`` set, as PostgreSQL refuses a value
        it cannot hold: every re-send of the step would be refused the same way."""

        async def apply(self, workflow_id, expected_version, update, history):
            if update.state.get("ran"):
                raise UnstorableValue("save_workflow", "unsupported Unicode escape sequence")
            return await super().apply(workflow_id, expected_version, update, history)

    outbox = Outbox()
    settings = FleetSettings("q", lease_seconds=300, sweep_interval=10, max_countdown=60)
    coordinator = Coordinator(load_registry(REGISTRY), Refusing(), outbox,  # type: ignore[arg-type]
                              settings)
    record, _ = await coordinator.start("Ticked", {"label": "x"})
    await _drain(coordinator, outbox)
    failed = await coordinator.load(record.id)
    assert failed.status == "FAILED" and failed.current_step == "Tick"
    assert failed.error is not None
    assert "its result cannot be stored: PostgreSQL refused a value" in failed.error["message"]
    assert failed.state == {"label": "x", "ran": False}  # the stored state is untouched
    assert await coordinator.sweep() == 0  # nothing left for the sweep to re-send


def test_a_retry_sent_with_a_countdown_is_leased_for_the_wait_and_the_run() -> None:
    coordinator, _ = _coordinator()
    lease = coordinator.settings.lease_for(coordinator.registry.get("Ticked").step("Tick"))
    assert coordinator.leases.due_in("Ticked", "ACTIVE", "Tick") == lease
    # Published with a 2 s countdown: the sweep must not send a second copy at 2 s.
    assert coordinator.leases.due_in("Ticked", "ACTIVE", "Tick", retry_delay=2.0) == 2.0 + lease
    # Past max_countdown it is not published: the sweep sends it when the delay is over.
    assert coordinator.leases.due_in("Ticked", "ACTIVE", "Tick", retry_delay=600.0) == 600.0


async def test_the_sweep_leaves_types_it_cannot_run_due_for_a_worker_that_can() -> None:
    coordinator, outbox = _coordinator()
    store = coordinator.persistence
    mine, _ = await coordinator.start("Ticked", {})
    foreign = coordinator.builder.new_record("Ticked", {})
    foreign.workflow_type = "OtherTeam"
    await store.create_workflow(foreign, due_in=-1)
    await store.apply(mine.id, mine.version, RecordUpdate.keep(mine, due_in=-1), [])
    outbox.sent.clear()
    assert await coordinator.sweep() == 1
    assert [m[0] for m in outbox.sent] == [mine.id]
    # Still due: not claimed (and so not delayed) by a worker that lacks its type.
    assert [d.workflow_id for d in await store.claim_due(lease_seconds=300)] == [foreign.id]


async def test_a_sub_workflow_that_ended_before_its_parent_committed_wakes_the_parent() -> None:
    coordinator, outbox = _coordinator()
    parent, _ = await coordinator.start("Parent", {"value": 4})
    # An earlier run of Start_Child started the child, which completed, but that run's
    # commit was lost (the worker died): the child's wake-up found the parent still ACTIVE.
    child = coordinator.builder.related_record(parent, "Start_Child", "Child",
                                               {"value": 4}, child=True)
    stored, _ = await coordinator.persistence.create_workflow(child)
    await coordinator.persistence.apply(stored.id, stored.version, RecordUpdate.keep(
        stored, status="COMPLETED", current_step=None,
        state={**stored.state, "result": 8}), [])
    await _drain(coordinator, outbox)  # Start_Child runs again; no sweep needed after it
    done = await coordinator.load(parent.id)
    assert done.status == "COMPLETED" and done.state["result"] == 8


async def _stuck_saga(coordinator: Coordinator, outbox: Outbox) -> tuple[str, int]:
    """A SagaHang workflow at its Stuck step, First done."""
    record, _ = await coordinator.start("SagaHang", {})
    await coordinator.handle_step(record.id, "First", record.version)
    outbox.sent.clear()
    stuck = await coordinator.load(record.id)
    assert stuck.current_step == "Stuck"
    return record.id, stuck.version


async def test_a_hard_killed_saga_step_hands_its_compensations_to_a_pool_process() -> None:
    coordinator, outbox = _coordinator()
    workflow_id, version = await _stuck_saga(coordinator, outbox)
    # In the worker's main process: record the kill, run no compensation there.
    await coordinator.fail_step(workflow_id, "Stuck", version, TimeoutError("hard limit"))
    handed = await coordinator.load(workflow_id)
    assert handed.status == "ACTIVE" and handed.state["undone"] == []
    assert handed.runtime.compensate is not None
    assert handed.runtime.compensate["error"]["type"] == "TimeoutError"
    assert outbox.sent == [(workflow_id, "Stuck", handed.version, None)]
    await _drain(coordinator, outbox)  # the step's message, in a pool process
    done = await coordinator.load(workflow_id)
    assert done.status == "FAILED_ROLLED_BACK" and done.error is not None \
        and done.error["type"] == "TimeoutError"
    assert [u.split("@")[0] for u in done.state["undone"]] == ["First"]
    assert done.runtime.compensate is None


async def test_compensations_killed_in_turn_fail_the_workflow_without_running_again() -> None:
    coordinator, outbox = _coordinator()
    workflow_id, version = await _stuck_saga(coordinator, outbox)
    await coordinator.fail_step(workflow_id, "Stuck", version, TimeoutError("hard limit"))
    handed = await coordinator.load(workflow_id)
    # The pool process running the compensations hit the hard limit as well.
    await coordinator.fail_step(workflow_id, "Stuck", handed.version,
                                TimeoutError("hard limit, compensating"))
    failed = await coordinator.load(workflow_id)
    assert failed.status == "FAILED" and failed.state["undone"] == []
    assert failed.error is not None
    assert failed.error["message"] == "hard limit"
    assert failed.error["compensation_failures"][0]["message"] == "hard limit, compensating"
