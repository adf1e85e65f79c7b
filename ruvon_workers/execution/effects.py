"""What a transition needs done before it commits: start the sub-workflow or the
FIRE_AND_FORGET workflow it names, store the schedule a CRON_SCHEDULE step registers.

Each is idempotent (the started workflow's key is fixed by the step execution, a schedule
is stored by name), so a step that runs again after a crash repeats them harmlessly. The
fleet's coordinator and the in-process provider share this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..builder import WorkflowBuilder
from ..engine.executor import StepRunner, Transition
from ..engine.records import WorkflowRecord
from ..errors import DatabaseError, RuvonError, StepFailed
from ..persistence.base import PersistenceProvider


async def prepare(builder: WorkflowBuilder, persistence: PersistenceProvider,
                  runner: StepRunner, transition: Transition,
                  due_in: Callable[[WorkflowRecord], float | None]
                  ) -> tuple[Transition, list[WorkflowRecord]]:
    """Perform ``transition``'s side effects; return it (failed, if one was refused) and
    the workflows it started, to be dispatched once it has committed."""
    step = runner.step
    started: list[WorkflowRecord] = []
    try:
        if transition.child is not None:
            child = await _create(builder, persistence, runner, transition.child.workflow_type,
                                  transition.child.initial_data, child=True, due_in=due_in)
            transition.update.runtime["child"] = {
                "id": child.id, "workflow_type": child.workflow_type, "status": child.status,
                "current_step": child.current_step}
            _detail(transition, sub_workflow_id=child.id)
            started.append(child)
        if transition.spawn is not None:
            spawned = await _create(builder, persistence, runner,
                                    transition.spawn["workflow_type"],
                                    transition.spawn["initial_data"], child=False, due_in=due_in)
            runtime = transition.update.runtime
            runtime["spawned"] = {**runtime.get("spawned", {}), step.name: spawned.id}
            if step.output_key:
                transition.update.state = {**transition.update.state,
                                           step.output_key: spawned.id}
            _detail(transition, spawned_workflow_id=spawned.id)
            started.append(spawned)
        if transition.schedule is not None:
            await persistence.upsert_schedule(transition.schedule)
    except DatabaseError:
        raise
    except RuvonError as exc:
        transition = await runner.fail(StepFailed(step.name, str(exc)), time.perf_counter())
        started = []
    return transition, started


async def _create(builder: WorkflowBuilder, persistence: PersistenceProvider,
                  runner: StepRunner, workflow_type: str | None,
                  initial_data: dict[str, Any] | None, *, child: bool,
                  due_in: Callable[[WorkflowRecord], float | None]) -> WorkflowRecord:
    record = builder.related_record(runner.record, runner.step.name, workflow_type,
                                    initial_data, child=child,
                                    execution_version=runner.execution_version)
    stored, _ = await persistence.create_workflow(record, due_in=due_in(record))
    return stored


def _detail(transition: Transition, **values: Any) -> None:
    if transition.history:
        entry = transition.history[0]
        entry.detail = {**(entry.detail or {}), **values}
