"""Sub-workflows: a step raises StartSubWorkflowDirective; the program drives the child."""

import asyncio
import json
import os

import yaml
from ruvon.engine import WorkflowEngine
from ruvon.implementations.execution.sync import SyncExecutor
from ruvon.implementations.expression_evaluator.simple import SimpleExpressionEvaluator
from ruvon.implementations.observability.noop import NoopWorkflowObserver
from ruvon.implementations.persistence.memory import InMemoryPersistence
from ruvon.implementations.templating.jinja2 import Jinja2TemplateEngine

HERE = os.path.dirname(os.path.abspath(__file__))


def load_registry(path: str) -> dict:
    with open(path) as f:
        entries = yaml.safe_load(f)["workflows"]
    return {entry["type"]: entry for entry in entries}


async def main(persistence_provider=None, execution_provider=None) -> dict:
    owns_persistence = persistence_provider is None
    owns_execution = execution_provider is None
    persistence = persistence_provider or InMemoryPersistence()
    execution = execution_provider or SyncExecutor()
    observer = NoopWorkflowObserver()
    if owns_persistence:
        await persistence.initialize()

    # SyncExecutor does not run children itself: it reports a child's status changes to
    # the engine it was initialised with, which updates (and unblocks) the parent.
    engine = WorkflowEngine(
        persistence=persistence,
        executor=execution,
        observer=observer,
        workflow_registry=load_registry(os.path.join(HERE, "workflow_registry.yaml")),
        expression_evaluator_cls=SimpleExpressionEvaluator,
        template_engine_cls=Jinja2TemplateEngine,
        config_dir=HERE,
    )
    await engine.initialize()
    builder = engine.workflow_builder

    workflow = await builder.create_workflow(
        workflow_type="CustomerOnboarding",
        persistence_provider=persistence,
        execution_provider=execution,
        workflow_builder=builder,
        expression_evaluator_cls=SimpleExpressionEvaluator,
        template_engine_cls=Jinja2TemplateEngine,
        workflow_observer=observer,
        initial_data={"customer": "olivia"},
    )
    await persistence.save_workflow(workflow.id, workflow.to_dict())

    calls = []
    child = None
    child_calls = []
    parent_status_before_reload = None
    while workflow.status in ("ACTIVE", "PENDING_SUB_WORKFLOW") and len(calls) < 10:
        if workflow.status == "PENDING_SUB_WORKFLOW":
            # Drive the child; a child advances through its steps on its own.
            child = await engine.get_workflow(workflow.blocked_on_child_id)
            while child.status == "ACTIVE" and len(child_calls) < 10:
                result, next_step = await child.next_step(user_input={})
                child_calls.append({"result": result, "next_step": next_step,
                                    "status": child.status})
            # The parent object in hand is stale; the engine saved the updated one.
            parent_status_before_reload = workflow.status
            workflow = await engine.get_workflow(workflow.id)
            calls.append({"reloaded_parent_status": workflow.status})
            continue
        result, next_step = await workflow.next_step(user_input={})
        calls.append({"result": result, "next_step": next_step, "status": workflow.status})

    if owns_execution:
        await execution.close()
    if owns_persistence:
        await persistence.close()
    return {
        "status": workflow.status,
        "current_step": workflow.current_step_name,
        "state": workflow.state.model_dump(mode="json"),
        "trail": list(workflow.state.trail),
        "calls": calls,
        "child": None if child is None else {
            "workflow_type": child.workflow_type,
            "status": child.status,
            "state": child.state.model_dump(mode="json"),
            "trail": list(child.state.trail),
            "calls": child_calls,
            "parent_execution_id_matches": child.parent_execution_id == workflow.id,
        },
        "notes": {"parent_status_before_reload": parent_status_before_reload},
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2, sort_keys=True, default=str))
