"""Around a commit: what a transition needs done before it (start the sub-workflow or
the FIRE_AND_FORGET workflow it names, store the schedule a CRON_SCHEDULE step
registers), and committing it so that a value the database refuses fails the step.

Each effect is idempotent (the started workflow's key is fixed by the step execution, a
schedule is stored by name), so a step that runs again after a crash repeats them
harmlessly. An attempt whose commit then loses the compare-and-set undoes what it newly
made, unless the run still refers to it (:func:`undo`). The fleet's coordinator and the
in-process provider share this.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..definitions.models import WorkflowDefinition
from ..engine.records import HistoryEntry, Status, WorkflowRecord
from ..engine.runner import StepRunner
from ..engine.transition import Transition
from ..errors import DatabaseError, InvalidTransition, RuvonError, StepFailed, WorkflowNotFound

if TYPE_CHECKING:
    from ..builder import WorkflowBuilder
    from ..persistence.base import PersistenceProvider

#: Seconds until the sweep may dispatch a new workflow (``None``: nothing sweeps).
DueIn = Callable[[WorkflowRecord], float | None]

FAILED = frozenset({Status.FAILED, Status.FAILED_ROLLED_BACK, Status.FAILED_CHILD_WORKFLOW})


@dataclass
class Created:
    """What one attempt of a step newly made before its commit: the workflows it
    inserted (not those it found by their key) and the schedule it inserted (not one it
    updated). ``execution_version`` keys them (see ``StepRunner``)."""

    step: str = ""
    execution_version: int = 0
    workflows: list[str] = field(default_factory=list)
    schedule: str | None = None


async def prepare_effects(builder: WorkflowBuilder, persistence: PersistenceProvider,
                          defn: WorkflowDefinition, record: WorkflowRecord,
                          transition: Transition, due_in: DueIn,
                          ) -> tuple[Transition, list[WorkflowRecord], Created]:
    """Perform ``transition``'s side effects; return it (failed, if one was refused),
    the workflows it started, to be dispatched once it has committed, and what it newly
    made, for :func:`undo` should the commit lose."""
    if transition.child is None and transition.spawn is None and transition.schedule is None:
        return transition, [], Created()
    runner = StepRunner(defn, record)
    step = runner.step
    started: list[WorkflowRecord] = []
    created = Created(step.name, runner.execution_version)
    try:
        if transition.child is not None:
            child = await _create(builder, persistence, runner, transition.child.workflow_type,
                                  transition.child.initial_data, child=True, due_in=due_in,
                                  created=created)
            transition.update.runtime.child = {
                "id": child.id, "workflow_type": child.workflow_type, "status": child.status,
                "current_step": child.current_step}
            transition.add_detail(sub_workflow_id=child.id)
            started.append(child)
        if transition.spawn is not None:
            spawned = await _create(builder, persistence, runner,
                                    transition.spawn["workflow_type"],
                                    transition.spawn["initial_data"], child=False, due_in=due_in,
                                    created=created)
            transition.update.runtime.spawned[step.name] = spawned.id
            if step.output_key:
                transition.update.state = {**transition.update.state,
                                           step.output_key: spawned.id}
            transition.add_detail(spawned_workflow_id=spawned.id)
            started.append(spawned)
        if transition.schedule is not None and await persistence.upsert_schedule(
                transition.schedule):
            created.schedule = str(transition.schedule["name"])
    except DatabaseError:
        raise
    except RuvonError as exc:
        transition = await runner.fail(StepFailed(step.name, str(exc)), time.perf_counter())
        started = []
    return transition, started, created


async def _create(builder: WorkflowBuilder, persistence: PersistenceProvider,
                  runner: StepRunner, workflow_type: str | None,
                  initial_data: dict[str, Any] | None, *, child: bool,
                  due_in: DueIn, created: Created) -> WorkflowRecord:
    record = builder.related_record(runner.record, runner.step.name, workflow_type,
                                    initial_data, child=child,
                                    execution_version=runner.execution_version)
    stored, new = await builder.insert(persistence, record, due_in=due_in(record))
    if new:
        created.workflows.append(stored.id)
    return stored


#: ``await cancel(workflow_id, reason)``: cancel a run (and what it waits for).
Cancel = Callable[[str, str], Awaitable[Any]]


async def undo(persistence: PersistenceProvider, workflow_id: str, created: Created,
               cancel: Cancel) -> list[str]:
    """After the commit of ``created``'s step lost its compare-and-set: cancel the
    workflows and delete the schedule that attempt newly made, unless the run refers to
    them; return what was undone (ids, and the schedule's name).

    Only what this attempt inserted is a candidate: a run or schedule it found already
    there belongs to an earlier attempt, which may be the one that committed. Even one it
    inserted may be the winner's: a duplicate delivery of the same step execution builds
    the same key, so it found this attempt's run and committed it (the run's state names
    it, and a history row of that commit does). And while the run still stands at this
    step execution (the winner scheduled a retry, say), its next attempt builds the same
    key and takes the run over, so nothing is undone then either.
    """
    if not created.workflows and created.schedule is None:
        return []
    record = await persistence.load_workflow(workflow_id)
    kept: set[str] = set()
    if record is not None:
        if _runs_again(record, created):
            return []
        kept = _referenced(record, await persistence.history(workflow_id))
    undone: list[str] = []
    reason = (f"started by step {created.step} of {workflow_id}, whose commit lost to "
              "another change of that workflow")
    for run in created.workflows:
        if run in kept:
            continue
        try:
            await cancel(run, reason)
        except (InvalidTransition, WorkflowNotFound):
            continue  # it ended (or was removed) already
        undone.append(run)
    if created.schedule is not None and created.schedule not in kept \
            and await persistence.delete_schedule(created.schedule):
        undone.append(created.schedule)
    return undone


def _runs_again(record: WorkflowRecord, created: Created) -> bool:
    """Whether the run will run ``created``'s step execution again (same key)."""
    execution = record.runtime.execution
    return (not Status(record.status).is_terminal and record.current_step == created.step
            and execution is not None and execution["step"] == created.step
            and execution["version"] == created.execution_version)


def _referenced(record: WorkflowRecord, history: list[HistoryEntry]) -> set[str]:
    """The runs and schedules the committed run names: its sub-workflow, its
    FIRE_AND_FORGET runs, and those its history records starting or registering."""
    named = set(record.runtime.spawned.values())
    if record.runtime.child and record.runtime.child.get("id"):
        named.add(str(record.runtime.child["id"]))
    for entry in history:
        for key in ("sub_workflow_id", "spawned_workflow_id", "schedule"):
            value = (entry.detail or {}).get(key)
            if isinstance(value, str):
                named.add(value)
    return named


async def refused(defn: WorkflowDefinition, record: WorkflowRecord, transition: Transition,
                  exc: BaseException) -> Transition | None:
    """The database refused what a step produced (and would on every run): the step
    fails instead (its saga runs). ``None`` when ``transition`` already failed."""
    if transition.update.status in FAILED or record.current_step is None:
        return None
    return await StepRunner(defn, record).fail(
        StepFailed(transition.step, f"its result cannot be stored: {exc}"), retry=False)
