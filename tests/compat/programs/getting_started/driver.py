"""Getting started: three STANDARD steps chained with automate_next."""

import asyncio
import json
import os

import yaml
from ruvon.builder import WorkflowBuilder
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
    persistence = persistence_provider or InMemoryPersistence()
    execution = execution_provider or SyncExecutor()
    if owns_persistence:
        await persistence.initialize()

    builder = WorkflowBuilder(
        workflow_registry=load_registry(os.path.join(HERE, "workflow_registry.yaml")),
        expression_evaluator_cls=SimpleExpressionEvaluator,
        template_engine_cls=Jinja2TemplateEngine,
        config_dir=HERE,
    )
    workflow = await builder.create_workflow(
        workflow_type="Greeting",
        persistence_provider=persistence,
        execution_provider=execution,
        workflow_builder=builder,
        expression_evaluator_cls=SimpleExpressionEvaluator,
        template_engine_cls=Jinja2TemplateEngine,
        workflow_observer=NoopWorkflowObserver(),
        initial_data={"name": "Alice"},
    )
    await persistence.save_workflow(workflow.id, workflow.to_dict())

    # The usual loop: each call runs the current step (and, with automate_next,
    # the ones chained after it) until the workflow leaves ACTIVE.
    calls = []
    while workflow.status == "ACTIVE" and len(calls) < 10:
        result, next_step = await workflow.next_step(user_input={})
        calls.append({"result": result, "next_step": next_step, "status": workflow.status})

    if owns_persistence:
        await persistence.close()
    return {
        "status": workflow.status,
        "current_step": workflow.current_step_name,
        "state": workflow.state.model_dump(mode="json"),
        "trail": list(workflow.state.trail),
        "calls": calls,
        "notes": {"next_step_calls": len(calls)},
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2, sort_keys=True, default=str))
