"""The state machine: every change to a run is an event applied by :func:`decide`.

``decide(definition, record, event) -> Transition`` computes the new row, its history
entries and what the caller does around the commit; it writes nothing. The fleet's
coordinator and the in-process provider only load, decide, commit (compare-and-set) and
then send or run what comes next: the same rules run in both places.

Events: :class:`RunStep` (a step message, a retry that came due, ``next_step``),
:class:`Resume`, :class:`Cancel`, :class:`Retry` (an operator's), :class:`SetSagaMode`,
:class:`WorkerLost`,
:class:`FailedOutside` (a hard time limit, or a lost process past its allowance),
:class:`ChildChanged` (a sub-workflow ended or waits), :class:`Join` (a PARALLEL step's
branches reported). A branch's own outcome is decided by
:meth:`~.runner.StepRunner.retry_delay` (again, or failed) and stored with the fan-out.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from ..definitions.models import WorkflowDefinition
from ..errors import InvalidTransition, RuvonError, StepFailed
from ..errors import WorkerLost as WorkerLostError
from .records import Branch, HistoryEntry, RecordUpdate, Status, StepOutcome, WorkflowRecord
from .routing import arrive, next_after
from .runner import StepRunner
from .runtime import PAUSED
from .saga import compensate
from .steps.parallel import join
from .transition import Transition, error_info
from .values import validate_input


@dataclass
class RunStep:
    """Run the current step (with the input ``resume`` handed over, unless given)."""

    user_input: dict[str, Any] | None = None
    previous_result: object = None


@dataclass
class Resume:
    """Hand input to a run waiting for it; its step runs next."""

    user_input: dict[str, Any] = field(default_factory=dict)
    #: Who gave the input (an operator's name), kept in the RESUMED history row.
    by: str | None = None


@dataclass
class Cancel:
    reason: str = "cancelled"
    #: Who asked (an operator's name), kept in the CANCELLED history row.
    by: str | None = None


@dataclass
class Retry:
    """Run a failed (or cancelled) run again, from ``from_step`` or the failed step."""

    from_step: str | None = None
    #: Who asked (an operator's name), kept in the RETRIED history row.
    by: str | None = None


@dataclass
class JumpTo:
    """Move a run that is between steps (ACTIVE, or waiting for input) to ``step``: the
    docs' ``Workflow.jump_to_step``, an operator's jump."""

    step: str


@dataclass
class SetSagaMode:
    """Turn saga mode on (or off) for this run."""

    on: bool = True


@dataclass
class WorkerLost:
    """The process running the step died under it, for the ``count``-th time
    (``allowed``: how many losses are sent again before one counts as a failure)."""

    allowed: int


@dataclass
class FailedOutside:
    """A failed attempt recorded where no user code may run (the worker's main process):
    a hard time limit, or a process lost too often. Compensations are handed over."""

    exc: BaseException


@dataclass
class ChildChanged:
    """The sub-workflow the run waits for ended, or changed where it stands."""

    child: WorkflowRecord


@dataclass
class Join:
    """A PARALLEL step's branches have reported (or its timeout passed); ``started``:
    when the step began, where its branches ran in the same call."""

    branches: list[Branch]
    started: float | None = None


Event = (RunStep | Resume | Cancel | Retry | JumpTo | SetSagaMode | WorkerLost | FailedOutside
         | ChildChanged | Join)


async def decide(defn: WorkflowDefinition, record: WorkflowRecord,
                 event: Event) -> Transition | None:
    """The transition ``event`` causes on ``record``; ``None`` when it changes nothing.
    Raises :class:`InvalidTransition` (or an input error) for an operator request that
    does not fit the run's status."""
    if isinstance(event, RunStep):
        return await run_step(defn, record, event)
    if isinstance(event, Resume):
        return resume(defn, record, event.user_input, event.by)
    if isinstance(event, Cancel):
        return cancel(record, event.reason, event.by)
    if isinstance(event, Retry):
        return retry(defn, record, event.from_step, event.by)
    if isinstance(event, SetSagaMode):
        return set_saga_mode(record, event.on)
    if isinstance(event, JumpTo):
        return jump_to(defn, record, event.step)
    if isinstance(event, WorkerLost):
        return await worker_lost(defn, record, event.allowed)
    if isinstance(event, FailedOutside):
        return await failed_outside(defn, record, event.exc)
    if isinstance(event, ChildChanged):
        return await child_changed(defn, record, event.child)
    return await join(StepRunner(defn, record), event.branches, event.started)


async def run_step(defn: WorkflowDefinition, record: WorkflowRecord,
                   event: RunStep) -> Transition:
    if record.status == Status.WAITING_HUMAN and record.runtime.waiting_reason == PAUSED:
        record, done = past_pause(defn, record)
        if done is not None:
            return done
    runtime = record.runtime
    user_input = event.user_input if event.user_input is not None \
        else (runtime.pending_input or {})
    runner = StepRunner(defn, record, user_input=user_input,
                        previous_result=event.previous_result)
    handed = runtime.compensate
    if handed and handed["step"] == record.current_step:
        # A failure the worker's main process recorded: run its compensations here.
        return await runner.fail(None, error=dict(handed["error"]))
    return await runner.run()


def resume(defn: WorkflowDefinition, record: WorkflowRecord,
           user_input: dict[str, Any], by: str | None = None) -> Transition:
    if record.status != Status.WAITING_HUMAN or record.current_step is None:
        raise InvalidTransition(record.id, record.status, "resume",
                                "Only a workflow in WAITING_HUMAN takes input.")
    resumed = record.current_step
    detail = {"by": by} if by else None
    if record.runtime.waiting_reason == PAUSED:
        record, done = past_pause(defn, record)
        if done is not None:
            done.history[0].detail = detail
            return done
    assert record.current_step is not None
    validate_input(defn, defn.step(record.current_step), user_input)
    runtime = record.runtime.copy()
    runtime.pending_input = user_input
    runtime.waiting_reason = None
    return Transition(
        update=RecordUpdate.keep(record, status=Status.ACTIVE, runtime=runtime),
        history=[HistoryEntry(resumed, StepOutcome.RESUMED, detail=detail)],
        step=resumed)


def past_pause(defn: WorkflowDefinition, record: WorkflowRecord
               ) -> tuple[WorkflowRecord, Transition | None]:
    """A run its step paused goes on with the step after that one (Ruvon): the record as
    it stands there, ACTIVE, or the transition that completes the run when the paused
    step was the last."""
    assert record.current_step is not None
    runtime = record.runtime.copy()
    runtime.waiting_reason = runtime.waiting_for = None
    target, _ = next_after(defn, defn.step(record.current_step), record.state, runtime)
    if target is None:
        return record, Transition(
            update=RecordUpdate(Status.COMPLETED, None, record.state, runtime, error=None),
            history=[HistoryEntry(record.current_step, StepOutcome.RESUMED)],
            step=record.current_step)
    return dataclasses.replace(record, status=Status.ACTIVE, current_step=target,
                               runtime=runtime), None


def cancel(record: WorkflowRecord, reason: str, by: str | None = None) -> Transition:
    """The run stops for good (CANCELLED), its state kept; the sub-workflow it waits for
    is to be cancelled too (``Transition.cancel_child``)."""
    if Status(record.status).is_terminal:
        raise InvalidTransition(record.id, record.status, "cancel")
    child = record.runtime.child or {}
    return Transition(
        update=RecordUpdate.keep(record, status=Status.CANCELLED, error={
            "step": record.current_step, "type": "Cancelled", "message": reason}),
        history=[HistoryEntry(record.current_step, StepOutcome.CANCELLED,
                              detail={"reason": reason, **({"by": by} if by else {})})],
        step=record.current_step or "",
        cancel_child=child.get("id") if record.current_step else None)


def jump_to(defn: WorkflowDefinition, record: WorkflowRecord, step: str) -> Transition:
    if record.status not in (Status.ACTIVE, Status.WAITING_HUMAN):
        raise InvalidTransition(record.id, record.status, f"jump to step '{step}'",
                                "Only a run between steps (ACTIVE or WAITING_HUMAN) jumps.")
    if not defn.has_step(step):
        raise RuvonError(f"Workflow '{record.workflow_type}' has no step '{step}'. "
                         f"Steps: {', '.join(s.name for s in defn.steps)}")
    status, current = arrive(defn, step)
    runtime = record.runtime.copy()
    runtime.pending_input = runtime.waiting_reason = runtime.execution = None
    runtime.loop = runtime.inserted = runtime.retry_at = None
    runtime.attempts, runtime.lost = {}, {}
    runtime.waiting_for = current if status == Status.WAITING_HUMAN else None
    return Transition(
        update=RecordUpdate(status, current, record.state, runtime, error=None),
        history=[HistoryEntry(record.current_step, StepOutcome.JUMPED,
                              detail={"next": current})],
        step=step, jumped_to=current)


def set_saga_mode(record: WorkflowRecord, on: bool) -> Transition:
    if Status(record.status).is_terminal:
        raise InvalidTransition(record.id, record.status, "change the saga mode of")
    runtime = record.runtime.copy()
    runtime.saga_mode = on
    return Transition(update=RecordUpdate.keep(record, runtime=runtime), history=[],
                      step=record.current_step or "")


_RETRYABLE = frozenset({Status.FAILED, Status.FAILED_CHILD_WORKFLOW, Status.CANCELLED,
                        Status.FAILED_WORKER_CRASH})


def retry(defn: WorkflowDefinition, record: WorkflowRecord,
          from_step: str | None = None, by: str | None = None) -> Transition:
    status = Status(record.status)
    allowed = _RETRYABLE | ({Status.FAILED_ROLLED_BACK} if from_step else set())
    if status not in allowed:
        raise InvalidTransition(record.id, status, "retry",
                                "Retry a FAILED, FAILED_CHILD_WORKFLOW, FAILED_WORKER_CRASH or "
                                "CANCELLED workflow "
                                "(a FAILED_ROLLED_BACK one only with --from-step).")
    step = from_step or (record.error or {}).get("step") or record.current_step
    if not step or not defn.has_step(step):
        raise RuvonError(f"Workflow '{record.workflow_type}' has no step '{step}'. "
                         f"Steps: {', '.join(s.name for s in defn.steps)}")
    new_status, current = arrive(defn, step)
    old = record.runtime
    runtime = old.copy()
    runtime.attempts, runtime.lost, runtime.compensated = {}, {}, None
    runtime.pending_input = runtime.waiting_reason = runtime.child = None
    runtime.parallel = runtime.execution = runtime.compensate = runtime.retry_at = None
    if from_step:
        runtime.loop = None  # from an explicit step, a LOOP starts over
    queue = old.inserted["steps"] if old.inserted else []
    if step in queue and old.inserted:  # injected steps still to run: from the retried one on
        runtime.inserted = {"steps": queue[queue.index(step):], "then": old.inserted["then"]}
    else:
        runtime.inserted = None
    # Steps from the retried one on will run again: they are no longer "completed" (a
    # later saga must compensate each execution once, not the old ones twice).
    if step in runtime.completed:
        runtime.completed = runtime.completed[:runtime.completed.index(step)]
    if new_status == Status.WAITING_HUMAN:
        runtime.waiting_for = current
    return Transition(
        update=RecordUpdate(new_status, current, record.state, runtime, error=None),
        history=[HistoryEntry(step, StepOutcome.RETRIED, detail={
            "from_status": str(status), **({"by": by} if by else {})})],
        step=step)


async def worker_lost(defn: WorkflowDefinition, record: WorkflowRecord,
                      allowed: int) -> Transition:
    """Send the step again, up to ``allowed`` losses; the next one is a failed attempt
    (retry policy, then FAILED), so a step that kills its process every time cannot
    loop forever."""
    runner = StepRunner(defn, record)
    step = runner.step.name
    lost = record.runtime.lost.get(step, 0) + 1
    exc = WorkerLostError(f"the worker process running step '{step}' died ({lost} time(s); "
                          "killed for memory? a crash in native code?)")
    if lost > allowed:
        return await failed_outside(defn, record, exc)
    runtime = record.runtime.copy()
    runtime.lost[step] = lost
    # the re-sent step keeps its execution's idempotency key
    runtime.execution = {"step": step, "version": runner.execution_version}
    return Transition(
        update=RecordUpdate.keep(record, runtime=runtime),
        history=[HistoryEntry(step, StepOutcome.RETRYING, runner.attempt,
                              error=error_info(step, exc), detail={"worker_lost": lost})],
        step=step)


async def failed_outside(defn: WorkflowDefinition, record: WorkflowRecord,
                         exc: BaseException) -> Transition:
    """A failed attempt recorded outside a pool process. No user code runs there (a
    compensation that hangs would stall the worker), so a failure that compensates is
    handed to a pool process: the step runs again and finds the error kept in
    ``runtime.compensate`` (see :func:`run_step`)."""
    runner = StepRunner(defn, record)
    step = runner.step.name
    handed = record.runtime.compensate
    if handed and handed["step"] == step:
        # The pool process running the compensations was killed as well: fail without.
        return await runner.fail(exc, retry=False, compensate=False, error={
            **handed["error"], "compensated": [],
            "compensation_failures": [error_info(step, exc)]})
    transition = await runner.fail(exc, compensate=False)
    if transition.update.status != Status.FAILED or not runner.compensates(exc):
        return transition
    runtime = record.runtime.copy()
    runtime.compensate = {"step": step, "error": transition.update.error or {}}
    return Transition(update=RecordUpdate.keep(record, runtime=runtime), history=[], step=step)


async def child_changed(defn: WorkflowDefinition, record: WorkflowRecord,
                        child: WorkflowRecord) -> Transition | None:
    """The sub-workflow ended: go on with its result, or fail (FAILED_CHILD_WORKFLOW, or
    the saga). Still running: show where it stands (e.g. waiting for input) on the
    parent, or nothing when that is already shown."""
    runner = StepRunner(defn, record)
    if not Status(child.status).is_terminal:
        # Ruvon: a parent whose child waits for input is WAITING_CHILD_HUMAN_INPUT.
        status = (Status.WAITING_CHILD_HUMAN_INPUT if child.status == Status.WAITING_HUMAN
                  else Status.PENDING_SUB_WORKFLOW)
        known = record.runtime.child or {}
        if known.get("status") == child.status and record.status == status and \
                known.get("current_step") == child.current_step:
            return None
        runtime = record.runtime.copy()
        runtime.child = {**known, "status": child.status, "current_step": child.current_step}
        return Transition(update=RecordUpdate.keep(record, status=status, runtime=runtime),
                          history=[], step=runner.step.name)
    started = time.perf_counter()
    if child.status == Status.COMPLETED:
        data = dict(record.state)
        if _accepts_field(defn, "sub_workflow_results"):
            # Ruvon's engine: by the child's id, with its type, status and final state.
            results = dict(data.get("sub_workflow_results") or {})
            results[child.id] = {"workflow_type": child.workflow_type,
                                 "status": str(child.status), "state": child.state,
                                 "final_result": {"status": "Workflow completed"}}
            data["sub_workflow_results"] = results
        from .values import validated_state

        try:
            new_state = validated_state(defn, data, runner.step.name)
        except StepFailed as exc:
            return await runner.fail(exc, started, retry=False)
        transition = runner.complete(new_state, child.state, started)
        transition.add_detail(sub_workflow=child.id)
        return transition
    reason = (child.error or {}).get("message")
    failure = StepFailed(runner.step.name,
                         f"sub-workflow {child.workflow_type} {child.id} ended {child.status}"
                         + (f": {reason}" if reason else ""))
    transition = await runner.fail(failure, started, retry=False, compensate=False)
    transition.update.status = Status.FAILED_CHILD_WORKFLOW
    assert transition.update.error is not None
    transition.update.error.update(type="SubWorkflowFailed", child_id=child.id,
                                   child_status=child.status)
    if defn.saga_enabled or record.runtime.saga_mode:
        await compensate(defn, record, transition)
    return transition


def _accepts_field(defn: WorkflowDefinition, name: str) -> bool:
    model = defn.state_model
    return name in model.model_fields or model.model_config.get("extra") == "allow"
