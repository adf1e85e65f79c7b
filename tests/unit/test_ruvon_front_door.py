"""The ``ruvon`` package: Ruvon's import paths, builder and Workflow members, over the
same engine (in-process here; the fleet through the coordinator)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from ruvon.builder import WorkflowBuilder
from ruvon.implementations.execution.sync import SyncExecutor
from ruvon.implementations.expression_evaluator.simple import SimpleExpressionEvaluator
from ruvon.implementations.observability.noop import NoopWorkflowObserver
from ruvon.implementations.persistence.memory import InMemoryPersistence
from ruvon.implementations.templating.jinja2 import Jinja2TemplateEngine
from ruvon.providers.observer import WorkflowObserver
from ruvon.workflow import Workflow
from ruvon_workers.errors import (
    DefinitionError,
    RuvonError,
    SagaWorkflowException,
    WorkflowFailedException,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ruvon_front"
STATE = "tests.fixtures.ruvon_front.steps.OrderState"
REGISTRY = {"Order": {"type": "Order", "config_file": "order.yaml",
                      "initial_state_model_path": STATE}}

RUVON_NAMES = {
    "ruvon": ["Workflow", "WorkflowBuilder", "StepContext", "__version__"],
    "ruvon.builder": ["WorkflowBuilder"],
    "ruvon.engine": ["WorkflowEngine"],
    "ruvon.workflow": ["Workflow"],
    "ruvon.models": ["StepContext", "MergeStrategy", "MergeConflictBehavior",
                     "WorkflowJumpDirective", "WorkflowPauseDirective",
                     "StartSubWorkflowDirective", "SagaWorkflowException",
                     "WorkflowFailedException"],
    "ruvon.implementations.persistence.memory": ["InMemoryPersistence"],
    "ruvon.implementations.persistence.postgres": ["PostgresPersistenceProvider"],
    "ruvon.implementations.persistence.sqlite": ["SQLitePersistenceProvider"],
    "ruvon.implementations.execution.sync": ["SyncExecutor"],
    "ruvon.implementations.execution.thread_pool": ["ThreadPoolExecutorProvider"],
    "ruvon.implementations.execution.celery": ["CeleryExecutionProvider"],
    "ruvon.implementations.observability.noop": ["NoopWorkflowObserver"],
    "ruvon.implementations.observability.logging": ["LoggingObserver"],
    "ruvon.implementations.expression_evaluator.simple": ["SimpleExpressionEvaluator"],
    "ruvon.implementations.templating.jinja2": ["Jinja2TemplateEngine"],
    "ruvon.providers": ["PersistenceError", "WorkflowNotFoundError",
                        "DuplicateIdempotencyKeyError"],
    "ruvon.providers.observer": ["WorkflowObserver"],
    "ruvon.providers.expression_evaluator": ["ExpressionEvaluator"],
    "ruvon.providers.template_engine": ["TemplateEngine"],
}


@pytest.mark.parametrize("module", sorted(RUVON_NAMES))
def test_ruvons_import_paths_resolve(module: str) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in RUVON_NAMES[module] if not hasattr(imported, name)]
    assert missing == []


def _builder() -> WorkflowBuilder:
    return WorkflowBuilder(workflow_registry=REGISTRY,
                           expression_evaluator_cls=SimpleExpressionEvaluator,
                           template_engine_cls=Jinja2TemplateEngine, config_dir=FIXTURES)


class Recorder(WorkflowObserver):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    async def on_workflow_started(self, workflow_id: str, workflow_type: str,
                                  initial_state: Any) -> None:
        self.events.append(("started", workflow_type))

    async def on_step_executed(self, workflow_id: str, step_name: str, step_index: int,
                               status: str, result: Any, current_state: Any,
                               duration_ms: float | None = None) -> None:
        self.events.append(("step", step_name, step_index, status))

    async def on_workflow_completed(self, workflow_id: str, workflow_type: str,
                                    final_state: Any) -> None:
        self.events.append(("completed", workflow_type))

    async def on_workflow_rolled_back(self, workflow_id: str, workflow_type: str,
                                      message: str, current_state: Any,
                                      completed_steps_stack: list[Any]) -> None:
        self.events.append(("rolled_back", completed_steps_stack))


async def _create(builder: WorkflowBuilder, order_id: str, observer: Any = None) -> Workflow:
    persistence = InMemoryPersistence()
    await persistence.initialize()
    # Ruvon's keyword arguments, every one of them.
    return await builder.create_workflow(
        workflow_type="Order", persistence_provider=persistence,
        execution_provider=SyncExecutor(), workflow_builder=builder,
        expression_evaluator_cls=SimpleExpressionEvaluator,
        template_engine_cls=Jinja2TemplateEngine,
        workflow_observer=observer or NoopWorkflowObserver(),
        initial_data={"order_id": order_id}, owner_id="u-1", org_id="o-1",
        data_region="eu", priority=5, idempotency_key=None, metadata={"source": "test"})


async def test_a_registry_dict_builds_and_runs_a_workflow_in_process() -> None:
    observer = Recorder()
    wf = await _create(_builder(), "A-1", observer)
    assert isinstance(wf, Workflow)
    assert (wf.status, wf.current_step, wf.current_step_name, wf.workflow_version) == (
        "ACTIVE", 0, "Reserve", "2")
    indexes, answers = [], []
    while wf.status == "ACTIVE":
        indexes.append(wf.current_step)
        answers.append(await wf.next_step(user_input={}))
    assert indexes == [0, 1, 2]
    # Ruvon's answers: the step's result and the next step; then "Workflow completed".
    assert answers == [({"reserved": True}, "Charge"), ({}, "Ship"),
                       ({"status": "Workflow completed"}, None)]
    assert await wf.next_step() == ({"status": "Workflow completed"}, None)
    assert wf.status == "COMPLETED" and wf.current_step == 3
    assert wf.state.trail == ["Reserve", "Charge", "Ship"]  # type: ignore[attr-defined]
    assert observer.events == [("started", "Order"), ("step", "Reserve", 0, "COMPLETED"),
                               ("step", "Charge", 1, "COMPLETED"),
                               ("step", "Ship", 2, "COMPLETED"), ("completed", "Order")]
    assert (wf.owner_id, wf.org_id, wf.data_region, wf.priority, wf.metadata) == (
        "u-1", "o-1", "eu", 5, {"source": "test"})
    data = wf.to_dict()
    assert (data["id"], data["status"], data["current_step"]) == (wf.id, "COMPLETED", None)
    # Only steps with a compensate_function go on the stack, as on Ruvon.
    assert [s["step_name"] for s in data["completed_steps_stack"]] == ["Reserve"]


async def test_create_workflow_takes_ruvons_positional_order() -> None:
    builder = _builder()
    persistence = InMemoryPersistence()
    wf = await builder.create_workflow("Order", persistence, SyncExecutor(), builder,
                                       SimpleExpressionEvaluator, Jinja2TemplateEngine,
                                       NoopWorkflowObserver(), {"order_id": "P-1"})
    assert wf.state.order_id == "P-1"  # type: ignore[attr-defined]
    assert await persistence.load_workflow(wf.id) is not None


async def test_enable_saga_mode_rolls_a_failed_run_back() -> None:
    observer = Recorder()
    wf = await _create(_builder(), "declined", observer)
    assert wf.saga_mode is False
    await wf.enable_saga_mode()
    assert wf.saga_mode is True
    with pytest.raises(SagaWorkflowException):
        while wf.status == "ACTIVE":
            await wf.next_step(user_input={})
    assert wf.status == "FAILED_ROLLED_BACK"
    # As on Ruvon, the failed step's in-place change is kept; its compensation ran.
    assert wf.state.trail == ["Reserve", "Charge", "undo:Reserve"]
    assert observer.events[-1] == ("rolled_back", ["Reserve"])


async def test_without_saga_mode_the_same_failure_only_fails() -> None:
    wf = await _create(_builder(), "declined")
    with pytest.raises(WorkflowFailedException):
        while wf.status == "ACTIVE":
            await wf.next_step(user_input={})
    assert wf.status == "FAILED" and wf.state.reserved is True  # type: ignore[attr-defined]


async def test_saga_mode_holds_on_the_fleet_too() -> None:
    from ruvon_workers.definitions import load_registry_mapping
    from ruvon_workers.engine.machine import SetSagaMode
    from ruvon_workers.execution.operations import apply_event
    from ruvon_workers.fleet.coordinator import Coordinator
    from ruvon_workers.fleet.settings import FleetSettings

    from .test_coordinator_rules import Outbox, _drain

    registry = load_registry_mapping(REGISTRY, FIXTURES)
    outbox = Outbox()
    coordinator = Coordinator(registry, InMemoryPersistence(), outbox,  # type: ignore[arg-type]
                              FleetSettings("q", lease_seconds=300, sweep_interval=10,
                                            max_countdown=60))
    record, _ = await coordinator.start("Order", {"order_id": "declined"})
    await apply_event(coordinator.persistence, coordinator.definition, record.id,
                      SetSagaMode(True))
    outbox.sent = [(record.id, "Reserve", record.version + 1, None)]
    await _drain(coordinator, outbox)
    done = await coordinator.load(record.id)
    assert done.status == "FAILED_ROLLED_BACK"
    assert done.state["trail"] == ["Reserve", "Charge", "undo:Reserve"]


def test_a_registry_file_is_read_from_config_dir_when_no_dict_is_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    builder = WorkflowBuilder(config_dir=FIXTURES)
    assert builder.workflow_types == ["Order"]
    assert builder.get_workflow_config("Order")["workflow_version"] == "2"
    monkeypatch.setenv("WORKFLOW_REGISTRY_FILE", "missing.yaml")
    with pytest.raises(DefinitionError, match=r"missing\.yaml"):
        WorkflowBuilder(config_dir=FIXTURES)


def test_the_simple_evaluator_and_the_template_engine_never_eval() -> None:
    assert SimpleExpressionEvaluator({"amount": 150}).evaluate("amount > 100") is True
    assert SimpleExpressionEvaluator({}).evaluate("__import__('os')") is None
    engine = Jinja2TemplateEngine({"name": "Ann"})
    assert engine.render({"hi": "Hello {{ name }}", "n": [1, "{{ name }}"]}) == {
        "hi": "Hello Ann", "n": [1, "Ann"]}
    assert engine.render("{{ ''.__class__.__mro__ }}") == "{{ ''.__class__.__mro__ }}"


async def test_the_engine_entry_point_starts_and_reloads_runs() -> None:
    from ruvon.engine import WorkflowEngine

    engine = WorkflowEngine(persistence=InMemoryPersistence(), executor=SyncExecutor(),
                            observer=NoopWorkflowObserver(), workflow_registry=REGISTRY,
                            expression_evaluator_cls=SimpleExpressionEvaluator,
                            template_engine_cls=Jinja2TemplateEngine, config_dir=FIXTURES)
    await engine.initialize()
    wf = await engine.start_workflow("Order", {"order_id": "E-1"})
    await wf.next_step()
    again = await engine.get_workflow(wf.id)
    assert isinstance(again, Workflow)
    assert (again.current_step_name, again.version) == ("Charge", wf.version)


async def test_with_syncexecutor_the_program_drives_the_child_and_the_parent_follows() -> None:
    # As on Ruvon's engine: the parent returns at once; while the child waits for input the
    # parent is WAITING_CHILD_HUMAN_INPUT; when the child ends the parent goes on, its
    # result filed under the child's id.
    from ruvon.engine import WorkflowEngine

    from ..helpers import FLEET_REGISTRY, not_none

    engine = WorkflowEngine(persistence=InMemoryPersistence(), executor=SyncExecutor(),
                            observer=NoopWorkflowObserver(),
                            workflow_registry=str(FLEET_REGISTRY))
    await engine.initialize()
    parent = await engine.start_workflow("Parent", {"value": 5, "child_mode": "wait"})
    result, _ = await parent.next_step()
    assert parent.status == "PENDING_SUB_WORKFLOW"
    assert result["child_workflow_id"] == parent.blocked_on_child_id
    child = await engine.get_workflow(not_none(parent.blocked_on_child_id))
    for _ in range(5):
        if child.current_step_name == "Wait_Note":
            break
        await child.next_step()
    assert child.record.status == "WAITING_HUMAN"
    waiting = await engine.get_workflow(parent.id)
    assert waiting.status == "WAITING_CHILD_HUMAN_INPUT"
    assert waiting.blocked_on_child_id == child.id
    await child.next_step({"note": "fine"})
    assert child.status == "COMPLETED"
    parent = await engine.get_workflow(parent.id)
    assert (parent.status, parent.current_step_name) == ("ACTIVE", "After")
    assert parent.state.sub_workflow_results[child.id]["status"] == "COMPLETED"  # type: ignore[attr-defined]
    await parent.next_step()
    assert parent.status == "COMPLETED" and parent.state.result == 10  # type: ignore[attr-defined]
    # Reporting again changes nothing: the parent no longer waits for that child.
    await engine.report_child_status(child.id, parent.id, "COMPLETED")
    assert (await engine.get_workflow(parent.id)).version == parent.version


async def test_report_child_status_moves_a_parent_its_child_did_not_wake() -> None:
    from ruvon.engine import WorkflowEngine
    from ruvon_workers.execution import SyncExecutionProvider

    from ..helpers import FLEET_REGISTRY, not_none

    engine = WorkflowEngine(persistence=InMemoryPersistence(), executor=SyncExecutor(),
                            observer=NoopWorkflowObserver(),
                            workflow_registry=str(FLEET_REGISTRY))
    await engine.initialize()
    parent = await engine.start_workflow("Parent", {"value": 5, "child_mode": "go"})
    await parent.next_step()
    # The child runs elsewhere, with an executor that does not tell its parent.
    child = await engine.workflow_builder.load_workflow(
        not_none(parent.blocked_on_child_id), persistence_provider=engine.persistence,
        execution_provider=SyncExecutionProvider())
    while child.status == "ACTIVE":
        await child.next_step()
    assert (await engine.get_workflow(parent.id)).status == "PENDING_SUB_WORKFLOW"
    await engine.report_child_status(child.id, parent.id, "COMPLETED")
    moved = await engine.get_workflow(parent.id)
    assert (moved.status, moved.current_step_name) == ("ACTIVE", "After")


async def test_jump_to_step_moves_a_run_between_steps() -> None:
    from ruvon_workers.errors import InvalidTransition

    wf = await _create(_builder(), "J-1", Recorder())
    await wf.jump_to_step("Ship")
    assert (wf.status, wf.current_step_name, wf.current_step) == ("ACTIVE", "Ship", 2)
    assert [h.status for h in await wf.history()][-1] == "JUMPED"
    await wf.next_step()
    assert wf.status == "COMPLETED"
    assert wf.state.trail == ["Ship"]  # type: ignore[attr-defined]
    with pytest.raises(InvalidTransition, match="jump to step 'Reserve'"):
        await wf.jump_to_step("Reserve")  # it has ended
    other = await _create(_builder(), "J-2", Recorder())
    with pytest.raises(RuvonError, match="has no step 'Nowhere'"):
        await other.jump_to_step("Nowhere")


async def test_a_store_of_your_own_subclasses_ruvons_and_plugs_in() -> None:
    class Audited(InMemoryPersistence):
        def __init__(self) -> None:
            super().__init__()
            self.writes: list[str | None] = []

        async def apply(self, workflow_id: str, expected_version: int, update: Any,
                        history: Any) -> int:
            self.writes.append(update.current_step)
            version: int = await super().apply(workflow_id, expected_version, update, history)
            return version

    store = Audited()
    wf = await _builder().create_workflow(
        "Order", persistence_provider=store, execution_provider=SyncExecutor(),
        workflow_builder=None, expression_evaluator_cls=SimpleExpressionEvaluator,
        template_engine_cls=Jinja2TemplateEngine, workflow_observer=NoopWorkflowObserver(),
        initial_data={"order_id": "S-1"})
    while wf.status == "ACTIVE":
        await wf.next_step()
    assert wf.status == "COMPLETED" and store.writes == ["Charge", "Ship", None]
