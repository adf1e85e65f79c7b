"""Run one step of a workflow and compute the transition it causes.

This module is the state machine shared by the in-process ``Workflow`` and the fleet's
coordinator. It never writes anything: it returns a :class:`Transition` that the caller
commits with a compare-and-set, so a step whose commit loses changes nothing.
"""

from __future__ import annotations

import inspect
import time
import traceback
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ..definitions.models import RetryPolicy, StepDefinition, StepType, WorkflowDefinition
from ..directives import StartSubWorkflowDirective, WorkflowJumpDirective, WorkflowPauseDirective
from ..errors import (
    InvalidStateError,
    SagaWorkflowException,
    StepFailed,
    WorkflowFailedException,
)
from ..utils.serialization import NUL_REFUSED, nul_path
from .context import StepContext
from .records import HistoryEntry, RecordUpdate, Status, StepOutcome, WorkflowRecord


@dataclass
class Transition:
    """What one step did, ready to be committed."""

    update: RecordUpdate
    history: list[HistoryEntry]
    step: str
    result: Any = None
    jumped_to: str | None = None
    retry_delay: float | None = None
    auto_continue: bool = False
    #: Side effects the caller performs (idempotently) before committing the transition:
    child: StartSubWorkflowDirective | None = None  # start a sub-workflow and wait for it
    spawn: dict[str, Any] | None = None  # FIRE_AND_FORGET: start an independent workflow
    schedule: dict[str, Any] | None = None  # CRON_SCHEDULE: store a schedule
    fanout: list[dict[str, Any]] | None = None  # PARALLEL on the fleet: the branches

    @property
    def status(self) -> str:
        return self.update.status


def error_info(step: str | None, exc: BaseException) -> dict[str, Any]:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
    # NUL cannot be stored in jsonb: an error quoting one (an HTTP body excerpt, say)
    # must still be recordable.
    return {"step": step, "type": type(exc).__name__,
            "message": str(exc).replace("\x00", "\\x00"),
            "traceback": "".join(tb)[-2000:].replace("\x00", "\\x00")}


def check_storable(data: Any, step_name: str, what: str = "state field") -> None:
    """Refuse data PostgreSQL cannot store (a NUL character in a string), naming where."""
    path = nul_path(data)
    if path is not None:
        raise StepFailed(step_name, f"{what} '{path}' {NUL_REFUSED}; remove it in the step "
                                    "(e.g. value.replace('\\x00', ''))")


async def call_step_function(fn: Any, state: BaseModel, context: StepContext,
                             user_input: dict[str, Any]) -> Any:
    result = fn(state, context, **user_input)
    if inspect.isawaitable(result):
        result = await result
    return result


def validate_input(defn: WorkflowDefinition, step: StepDefinition,
                   user_input: dict[str, Any]) -> BaseModel | None:
    """Check input for ``step``; raise :class:`InvalidStateError` naming each field."""
    missing = [key for key in step.required_input if key not in user_input]
    if missing:
        raise InvalidStateError(
            f"Input for step '{step.name}'",
            [{"loc": (key,), "msg": "Field required"} for key in missing],
        )
    unstorable = nul_path(user_input)
    if unstorable is not None:
        raise InvalidStateError(
            f"Input for step '{step.name}'",
            [{"loc": (unstorable,), "msg": NUL_REFUSED}])
    model = defn.input_models.get(step.name)
    if model is None:
        return None
    try:
        return model.model_validate(user_input)
    except ValidationError as exc:
        raise InvalidStateError.from_validation_error(
            f"Input for step '{step.name}'", exc) from None


def merge_result(defn: WorkflowDefinition, state: BaseModel, result: Any,
                 step_name: str) -> dict[str, Any]:
    """Merge a step's returned dict (and in-place changes) into the state; re-validate."""
    # The live field values (not a dump): in-place changes are kept, and nested models
    # are not validated again unless the step replaced them.
    data = {**state.__dict__, **(state.__pydantic_extra__ or {})}
    if isinstance(result, BaseModel):
        result = result.model_dump()
    if isinstance(result, dict):
        data.update(result)
    elif result is not None:
        raise StepFailed(step_name, f"returned {type(result).__name__}; a step returns a dict "
                                    "of state fields to merge, or None")
    return validated_state(defn, data, step_name)


def validated_state(defn: WorkflowDefinition, data: dict[str, Any], step_name: str
                    ) -> dict[str, Any]:
    try:
        validated = defn.state_model.model_validate(data)
    except ValidationError as exc:
        err = InvalidStateError.from_validation_error(
            f"Step '{step_name}' produced a state that {defn.state_model.__name__} rejects", exc)
        raise StepFailed(step_name, str(err)) from None
    dumped = validated.model_dump(mode="json")
    check_storable(dumped, step_name)
    return dumped


def load_state(defn: WorkflowDefinition, record: WorkflowRecord) -> BaseModel:
    return defn.state_model.model_validate(record.state)


def next_after(defn: WorkflowDefinition, step: StepDefinition, state: dict[str, Any],
               runtime: dict[str, Any] | None = None) -> tuple[str | None, bool]:
    """The step that follows ``step`` and whether a route chose it.

    With ``runtime``, ``dynamic_injection`` applies: steps a rule inserted after the
    current one run first (recorded in ``runtime["inserted"]``), then the workflow goes
    on where it would have gone.
    """
    target, routed = _route(defn, step, state)
    if runtime is None:
        return target, routed
    inserted = runtime.get("inserted") or {}
    queue = list(inserted.get("steps", []))
    if queue and queue[0] == step.name:  # an inserted step finished
        queue.pop(0)
        target, routed = inserted.get("then"), True
    new = [name for rule in defn.injection_rules.get(step.name, ()) if rule.matches(state)
           for name in rule.steps_to_insert]
    if new and not queue:
        inserted = {"then": target}
    queue = new + queue
    if queue:
        runtime["inserted"] = {"steps": queue, "then": inserted.get("then", target)}
        return queue[0], True
    runtime.pop("inserted", None)
    return target, routed


def _route(defn: WorkflowDefinition, step: StepDefinition,
           state: dict[str, Any]) -> tuple[str | None, bool]:
    for condition, target in defn.routes.get(step.name, ()):
        if condition is None or condition.evaluate(state):
            return target, True
    return defn.step_after(step.name), False


def arrive(defn: WorkflowDefinition, next_step: str | None) -> tuple[str, str | None]:
    """Status on arriving at ``next_step``: HUMAN_IN_LOOP steps wait for input."""
    if next_step is None:
        return Status.COMPLETED, None
    if defn.step(next_step).type is StepType.HUMAN_IN_LOOP:
        return Status.WAITING_HUMAN_INPUT, next_step
    return Status.ACTIVE, next_step


class StepRunner:
    """Runs ``record.current_step`` once and returns the transition."""

    def __init__(self, defn: WorkflowDefinition, record: WorkflowRecord, *,
                 user_input: dict[str, Any] | None = None, fleet: bool = False,
                 previous_result: Any = None):
        if record.current_step is None:
            raise StepFailed("<none>", "workflow has no current step")
        self.defn = defn
        self.record = record
        self.step = defn.step(record.current_step)
        self.user_input = dict(user_input or {})
        self.fleet = fleet
        self.previous_result = previous_result
        attempts = record.runtime.get("attempts", {})
        self.attempt = int(attempts.get(self.step.name, 0)) + 1
        # The version the step's first attempt ran at: retries keep the idempotency key.
        execution = record.runtime.get("execution") or {}
        self.execution_version = (execution.get("version", record.version)
                                  if execution.get("step") == self.step.name else record.version)
        self.policy: RetryPolicy | None = self.step.retry_policy
        if self.step.type is StepType.HTTP:
            from .http import effective_retry_policy

            self.policy = effective_retry_policy(self.step)

    def context(self, validated: BaseModel | None) -> StepContext:
        return StepContext(
            workflow_id=self.record.id,
            step_name=self.step.name,
            validated_input=validated,
            previous_step_result=self.previous_result,
            attempt=self.attempt,
            idempotency_key=f"{self.record.id}:{self.step.name}:{self.execution_version}",
            workflow_type=self.record.workflow_type,
            user_input=self.user_input,
        )

    async def run(self) -> Transition:
        step = self.step
        validated = validate_input(self.defn, step, self.user_input)
        state = load_state(self.defn, self.record)
        started = time.perf_counter()
        fn = self.defn.function(step.function)
        from .step_types import BY_TYPE  # imports this module

        special = BY_TYPE.get(step.type)
        try:
            if special is not None:
                return await special(self, state, started)
            if fn is None:
                # HUMAN_IN_LOOP without a function (and a routes-only DECISION): the
                # input, if any, is the step's result.
                result: Any = validated.model_dump() if validated else (self.user_input or None)
            else:
                result = await call_step_function(fn, state, self.context(validated),
                                                   self.user_input)
            new_state = merge_result(self.defn, state, result, step.name)
        except WorkflowJumpDirective as jump:
            return self._jump(state, jump, started)
        except WorkflowPauseDirective as pause:
            return self._pause(state, pause, started)
        except StartSubWorkflowDirective as child:
            return self._sub_workflow(state, child, started)
        except Exception as exc:
            return await self.fail(exc, started)
        return self._complete(new_state, result, started)

    def _ms(self, started: float) -> float:
        return round((time.perf_counter() - started) * 1000, 3)

    def _runtime(self, *, completed: bool) -> dict[str, Any]:
        runtime = dict(self.record.runtime)
        attempts = dict(runtime.get("attempts", {}))
        attempts.pop(self.step.name, None)
        runtime["attempts"] = attempts
        for key in ("pending_input", "waiting_reason", "child", "execution", "lost",
                    "compensate"):
            runtime.pop(key, None)
        if completed:
            runtime.pop("loop", None)
            runtime.pop("parallel", None)
        if completed:
            runtime["completed"] = [*runtime.get("completed", []), self.step.name]
        return runtime

    def _complete(self, new_state: dict[str, Any], result: Any, started: float) -> Transition:
        runtime = self._runtime(completed=True)
        target, routed = next_after(self.defn, self.step, new_state, runtime)
        return self._advance(new_state, result, target, routed, started, runtime)

    def _advance(self, new_state: dict[str, Any], result: Any, target: str | None,
                 jumped: bool, started: float,
                 runtime: dict[str, Any] | None = None) -> Transition:
        step = self.step
        status, current = arrive(self.defn, target)
        runtime = self._runtime(completed=True) if runtime is None else runtime
        if status == Status.ACTIVE and self.fleet and step.automate_next is False:
            # On the fleet every step continues on its own unless the step says not to.
            status = Status.WAITING_HUMAN_INPUT
            runtime["waiting_reason"] = "automate_next"
        history = [HistoryEntry(step.name, StepOutcome.COMPLETED, self.attempt, self._ms(started),
                                detail={"next": current} if jumped else None)]
        if status == Status.WAITING_HUMAN_INPUT:
            history.append(HistoryEntry(current, StepOutcome.WAITING, 1))
        if status == Status.WAITING_HUMAN_INPUT and current is not None:
            runtime["waiting_for"] = current
        else:
            runtime.pop("waiting_for", None)
        return Transition(
            update=RecordUpdate(status, current, new_state, runtime, error=None),
            history=history,
            step=step.name,
            result=result,
            jumped_to=current if jumped else None,
            auto_continue=(status == Status.ACTIVE and step.automate_next is True),
        )

    def _jump(self, state: BaseModel, jump: WorkflowJumpDirective, started: float) -> Transition:
        target = jump.target_step_name
        if not self.defn.has_step(target):
            return self._fail_now(StepFailed(self.step.name,
                                             f"jumped to '{target}', which names no step"), started)
        runtime = self._runtime(completed=True)
        runtime.pop("inserted", None)  # a jump leaves any injected steps behind
        return self._advance(state.model_dump(mode="json"), None, target, True, started,
                             runtime)

    def _pause(self, state: BaseModel, pause: WorkflowPauseDirective,
               started: float) -> Transition:
        step = self.step
        try:
            new_state = merge_result(self.defn, state, pause.result, step.name)
        except StepFailed as exc:
            return self._fail_now(exc, started)
        if step.type is StepType.HUMAN_IN_LOOP:
            # The step asked for (more) input itself: wait here and run it again on resume.
            runtime = self._runtime(completed=False)
            current: str | None = step.name
        else:
            runtime = self._runtime(completed=True)
            current = next_after(self.defn, step, new_state, runtime)[0]
            if current is None:
                return self._advance(new_state, pause.result, None, False, started, runtime)
        runtime["waiting_for"] = pause.waiting_for or current
        return Transition(
            update=RecordUpdate(Status.WAITING_HUMAN_INPUT, current, new_state, runtime),
            history=[HistoryEntry(step.name, StepOutcome.WAITING, self.attempt, self._ms(started),
                                  detail={"waiting_for": runtime["waiting_for"]})],
            step=step.name,
            result=pause.result,
        )

    def _sub_workflow(self, state: BaseModel, child: StartSubWorkflowDirective,
                      started: float) -> Transition:
        runtime = self._runtime(completed=False)
        runtime["child"] = {"workflow_type": child.workflow_type}
        return Transition(
            update=RecordUpdate(Status.PENDING_SUB_WORKFLOW, self.step.name,
                                state.model_dump(mode="json"), runtime),
            history=[HistoryEntry(self.step.name, StepOutcome.WAITING, self.attempt,
                                  self._ms(started), detail={"sub_workflow": child.workflow_type})],
            step=self.step.name,
            child=child,
        )

    def compensates(self, exc: BaseException) -> bool:
        """Whether failing for good with ``exc`` runs compensation functions."""
        return self.defn.saga_enabled or isinstance(exc, SagaWorkflowException)

    async def fail(self, exc: BaseException, started: float, *,
                   compensate: bool = True) -> Transition:
        """Retry the step if its policy allows, otherwise fail (or roll back) the workflow
        (``compensate=False``: fail without running compensations, for the caller to hand
        them to a pool process)."""
        policy = self.policy
        retryable = (not isinstance(exc, WorkflowFailedException | StepFailed)
                     and getattr(exc, "retryable", True))
        if policy and retryable and self.attempt < policy.max_attempts:
            delay = policy.delay_for(self.attempt)
            runtime = dict(self.record.runtime)
            runtime.pop("compensate", None)
            runtime["attempts"] = {**runtime.get("attempts", {}), self.step.name: self.attempt}
            runtime["execution"] = {"step": self.step.name, "version": self.execution_version}
            return Transition(
                update=RecordUpdate(Status.ACTIVE, self.step.name, self.record.state, runtime,
                                    error=error_info(self.step.name, exc)),
                history=[HistoryEntry(self.step.name, StepOutcome.RETRYING, self.attempt,
                                      self._ms(started), error=error_info(self.step.name, exc),
                                      detail={"retry_in_seconds": round(delay, 3)})],
                step=self.step.name,
                retry_delay=delay,
            )
        if not compensate:
            return self._fail_now(exc, started)
        return await self._fail(exc, started)

    async def fail_recorded(self, error: dict[str, Any]) -> Transition:
        """Fail for good with an error recorded earlier, running the compensations (a
        failure the worker's main process handed over, see the coordinator)."""
        transition = self._fail_now(None, time.perf_counter(), error=dict(error))
        await compensate(self.defn, self.record, transition)
        return transition

    def _fail_now(self, exc: BaseException | None, started: float, *,
                  error: dict[str, Any] | None = None) -> Transition:
        """Fail without retries and without awaiting (for engine-detected errors), with
        ``exc`` or an ``error`` recorded before."""
        if error is None:
            assert exc is not None
            error = error_info(self.step.name, exc)
        return Transition(
            update=RecordUpdate(Status.FAILED, self.step.name, self.record.state,
                                self._runtime(completed=False), error=error),
            history=[HistoryEntry(self.step.name, StepOutcome.FAILED, self.attempt,
                                  self._ms(started), error=error)],
            step=self.step.name,
        )

    async def _fail(self, exc: BaseException, started: float) -> Transition:
        transition = self._fail_now(exc, started)
        if self.compensates(exc):
            await compensate(self.defn, self.record, transition)
        return transition


    # -- going on after branches or a sub-workflow (see ``step_types``) -------------------

    async def join(self, branches: list[dict[str, Any]], started: float | None = None
                   ) -> Transition:
        """Merge finished PARALLEL branches in declared order and move on."""
        from .step_types import join

        return await join(self, branches, started)

    async def after_child(self, child: WorkflowRecord) -> Transition:
        """The sub-workflow this step started has ended: go on, or fail."""
        from .step_types import after_child

        return await after_child(self, child)


async def compensate(defn: WorkflowDefinition, record: WorkflowRecord,
                     transition: Transition) -> None:
    """Run the compensations of completed steps in reverse order into ``transition``."""
    state_dict = transition.update.state
    compensated: list[str] = []
    failures: list[dict[str, Any]] = []
    for name in reversed(record.runtime.get("completed", [])):
        if not defn.has_step(name):
            continue
        step = defn.step(name)
        fn = defn.function(step.compensate_function)
        if fn is None:
            continue
        started = time.perf_counter()
        state = defn.state_model.model_validate(state_dict)
        context = StepContext(workflow_id=record.id, step_name=name,
                              idempotency_key=f"{record.id}:{name}:compensate",
                              workflow_type=record.workflow_type)
        try:
            result = await call_step_function(fn, state, context, {})
            state_dict = merge_result(defn, state, result, name)
        except Exception as exc:
            err = error_info(name, exc)
            failures.append(err)
            transition.history.append(HistoryEntry(name, StepOutcome.COMPENSATION_FAILED, 1,
                                                   _ms(started), error=err))
            continue
        compensated.append(name)
        transition.history.append(HistoryEntry(name, StepOutcome.COMPENSATED, 1, _ms(started)))
    error = dict(transition.update.error or {})
    error["compensated"] = compensated
    if failures:
        error["compensation_failures"] = failures
    transition.update.state = state_dict
    transition.update.status = Status.FAILED_ROLLED_BACK
    transition.update.error = error
    transition.update.runtime["compensated"] = compensated


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
