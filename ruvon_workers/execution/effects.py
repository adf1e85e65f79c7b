"""Around a commit: what a transition needs done before it (start the sub-workflow or
the FIRE_AND_FORGET workflow it names, store the schedule a CRON_SCHEDULE step
registers), and committing it so that a value the database refuses fails the step.

Each effect is idempotent (the started workflow's key is fixed by the step execution, a
schedule is stored by name), so a step that runs again after a crash repeats them
harmlessly. The fleet's coordinator and the in-process provider share this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..definitions.models import WorkflowDefinition
from ..engine.records import Status, WorkflowRecord
from ..engine.runner import StepRunner
from ..engine.transition import Transition
from ..errors import DatabaseError, RuvonError, StepFailed

if TYPE_CHECKING:
    from ..builder import WorkflowBuilder
    from ..persistence.base import PersistenceProvider

#: Seconds until the sweep may dispatch a new workflow (``None``: nothing sweeps).
DueIn = Callable[[WorkflowRecord], float | None]

FAILED = frozenset({Status.FAILED, Status.FAILED_ROLLED_BACK, Status.FAILED_CHILD_WORKFLOW})


async def prepare(builder: WorkflowBuilder, persistence: PersistenceProvider,
                  defn: WorkflowDefinition, record: WorkflowRecord, transition: Transition,
                  due_in: DueIn) -> tuple[Transition, list[WorkflowRecord]]:
    """Perform ``transition``'s side effects; return it (failed, if one was refused) and
    the workflows it started, to be dispatched once it has committed."""
    if transition.child is None and transition.spawn is None and transition.schedule is None:
        return transition, []
    runner = StepRunner(defn, record)
    step = runner.step
    started: list[WorkflowRecord] = []
    try:
        if transition.child is not None:
            child = await _create(builder, persistence, runner, transition.child.workflow_type,
                                  transition.child.initial_data, child=True, due_in=due_in)
            transition.update.runtime.child = {
                "id": child.id, "workflow_type": child.workflow_type, "status": child.status,
                "current_step": child.current_step}
            transition.add_detail(sub_workflow_id=child.id)
            started.append(child)
        if transition.spawn is not None:
            spawned = await _create(builder, persistence, runner,
                                    transition.spawn["workflow_type"],
                                    transition.spawn["initial_data"], child=False, due_in=due_in)
            transition.update.runtime.spawned[step.name] = spawned.id
            if step.output_key:
                transition.update.state = {**transition.update.state,
                                           step.output_key: spawned.id}
            transition.add_detail(spawned_workflow_id=spawned.id)
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
                  due_in: DueIn) -> WorkflowRecord:
    record = builder.related_record(runner.record, runner.step.name, workflow_type,
                                    initial_data, child=child,
                                    execution_version=runner.execution_version)
    stored, _ = await builder.insert(persistence, record, due_in=due_in(record))
    return stored


async def refused(defn: WorkflowDefinition, record: WorkflowRecord, transition: Transition,
                  exc: BaseException) -> Transition | None:
    """The database refused what a step produced (and would on every run): the step
    fails instead (its saga runs). ``None`` when ``transition`` already failed."""
    if transition.update.status in FAILED or record.current_step is None:
        return None
    return await StepRunner(defn, record).fail(
        StepFailed(transition.step, f"its result cannot be stored: {exc}"), retry=False)
