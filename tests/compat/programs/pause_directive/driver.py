"""Pause directive: a STANDARD step raises WorkflowPauseDirective; the program resumes it."""

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
from ruvon.models import WorkflowPauseDirective

HERE = os.path.dirname(os.path.abspath(__file__))


def load_registry(path: str) -> dict:
    with open(path) as f:
        entries = yaml.safe_load(f)["workflows"]
    return {entry["type"]: entry for entry in entries}


async def advance(workflow, calls: list, user_input: dict) -> None:
    """One next_step call, recorded with what it returned or raised."""
    try:
        result, next_step = await workflow.next_step(user_input=user_input)
        calls.append({"input": user_input, "result": result, "next_step": next_step,
                      "status": workflow.status})
    except WorkflowPauseDirective as pause:
        calls.append({"input": user_input, "raised": "WorkflowPauseDirective",
                      "pause_result": pause.result, "status": workflow.status,
                      "waiting_step": workflow.current_step_name})


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
        workflow_type="DocumentReview",
        persistence_provider=persistence,
        execution_provider=execution,
        workflow_builder=builder,
        expression_evaluator_cls=SimpleExpressionEvaluator,
        template_engine_cls=Jinja2TemplateEngine,
        workflow_observer=NoopWorkflowObserver(),
        initial_data={"title": "Q3 report"},
    )
    await persistence.save_workflow(workflow.id, workflow.to_dict())
    status_on_creation = workflow.status

    calls: list = []
    # Runs Submit_Document, chains into Request_Review, which pauses.
    await advance(workflow, calls, {})
    review_status_while_paused = workflow.state.review_status
    # The reviewer's answer resumes the workflow.
    await advance(workflow, calls, {"reviewer": "kim", "verdict": "approve"})
    while workflow.status == "ACTIVE" and len(calls) < 10:
        await advance(workflow, calls, {})

    if owns_persistence:
        await persistence.close()
    return {
        "status": workflow.status,
        "current_step": workflow.current_step_name,
        "state": workflow.state.model_dump(mode="json"),
        "trail": list(workflow.state.trail),
        "calls": calls,
        "notes": {
            "status_on_creation": status_on_creation,
            "review_status_while_paused": review_status_while_paused,
        },
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2, sort_keys=True, default=str))
