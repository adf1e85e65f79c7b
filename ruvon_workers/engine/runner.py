"""Run the current step of a run once and compute the :class:`Transition` it causes.

The runner writes nothing. What a step type does beyond calling its function lives in
its module under :mod:`.steps`, which builds its transition through the public methods
here (``complete``, ``advance``, ``jump``, ``pause``, ``fail`` ...).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel

from ..definitions.models import RetryPolicy, StepDefinition, WorkflowDefinition
from ..directives import StartSubWorkflowDirective, WorkflowJumpDirective, WorkflowPauseDirective
from ..errors import SagaWorkflowException, StepFailed, WorkflowFailedException
from . import saga
from .changes import detached, state_changes
from .context import StepContext
from .records import HistoryEntry, RecordUpdate, Status, StepOutcome, WorkflowRecord
from .routing import arrive, next_after
from .runtime import PAUSED, PAUSED_IN_PLACE, Runtime
from .steps import kind_of
from .transition import Transition, elapsed_ms, error_info
from .values import (
    blocking_functions_in_threads,
    call_step_function,
    load_state,
    merge_result,
    validate_input,
)


def is_retryable(exc: BaseException) -> bool:
    """Whether a retry policy may run again what failed with ``exc``: not a failure the
    step chose (``WorkflowFailedException``), not one the engine found in what it
    produced (``StepFailed``), not one that says so (``retryable = False``)."""
    return (not isinstance(exc, WorkflowFailedException | StepFailed)
            and getattr(exc, "retryable", True) is not False)


class StepRunner:
    """Runs ``record.current_step`` once and returns the transition."""

    def __init__(self, defn: WorkflowDefinition, record: WorkflowRecord, *,
                 user_input: dict[str, Any] | None = None,
                 previous_result: object = None) -> None:
        if record.current_step is None:
            raise StepFailed("<none>", "workflow has no current step")
        self.defn = defn
        self.record = record
        self.step: StepDefinition = defn.step(record.current_step)
        self.user_input = dict(user_input or {})
        self.previous_result = previous_result
        #: The state before the step, to record what it changed (see :meth:`changes`).
        self.before = record.state
        self.attempt = record.runtime.attempts.get(self.step.name, 0) + 1
        # The version the step's first attempt ran at: retries keep the idempotency key.
        execution = record.runtime.execution
        self.execution_version = (execution["version"]
                                  if execution and execution["step"] == self.step.name
                                  else record.version)
        self.kind = kind_of(self.step.type)
        self.policy: RetryPolicy | None = self.kind.retry_policy(self.step)

    @property
    def idempotency_key(self) -> str:
        return f"{self.record.id}:{self.step.name}:{self.execution_version}"

    def context(self, validated: BaseModel | None = None) -> StepContext:
        return StepContext(
            workflow_id=self.record.id,
            step_name=self.step.name,
            validated_input=validated,
            previous_step_result=self.previous_result,
            attempt=self.attempt,
            idempotency_key=self.idempotency_key,
            workflow_type=self.record.workflow_type,
            user_input=self.user_input,
        )

    async def run(self) -> Transition:
        """Run the step (its type's ``run``); a directive or an error it raises becomes
        a jump, a pause, a sub-workflow or a failed attempt."""
        validated = validate_input(self.defn, self.step, self.user_input)
        self.before = detached(self.defn.state_model, self.record.state)
        state = load_state(self.defn, self.record)
        started = time.perf_counter()
        try:
            return await self.kind.run(self, state, validated, started)
        except WorkflowJumpDirective as jump:
            return await self.jump(state, jump, started)
        except WorkflowPauseDirective as pause:
            return await self.pause(state, pause, started)
        except StartSubWorkflowDirective as child:
            return self.wait_for_child(state, child, started)
        except StepFailed as exc:  # the engine refused what the step produced
            return await self.fail(exc, started)
        except Exception as exc:
            return await self.fail(exc, started, state=state)

    async def call(self, state: BaseModel, validated: BaseModel | None) -> object:
        """Call the step's function with the state, its context and the input."""
        fn = self.defn.function(self.step.function)
        kwargs = self.user_input if self.kind.takes_input else {}
        call = call_step_function(fn, state, self.context(validated), kwargs)
        limit = self.step.time_limit_seconds
        if not (limit and blocking_functions_in_threads()):
            return await call
        # Celery enforces no time limit in a threads pool: the limit is enforced here (the
        # function's thread runs on, unheard; the attempt fails and may be retried).
        try:
            async with asyncio.timeout(limit):
                return await call
        except TimeoutError:
            raise TimeoutError(f"step '{self.step.name}' ran past its time_limit_seconds "
                               f"({limit:g} s)") from None

    # -- building transitions -----------------------------------------------------------

    def changes(self, new_state: dict[str, Any]) -> dict[str, Any]:
        """The history detail of what the step changed: ``changed`` and ``removed``."""
        return state_changes(self.before, new_state)

    def runtime_after(self, *, completed: bool) -> Runtime:
        return self.record.runtime.after_step(self.step.name, completed=completed)

    def complete(self, new_state: dict[str, Any], result: object, started: float
                 ) -> Transition:
        """The step is done: go to the next step (routes and injected steps apply)."""
        runtime = self.runtime_after(completed=True)
        target, routed = next_after(self.defn, self.step, new_state, runtime)
        return self.advance(new_state, result, target, routed, started, runtime)

    def advance(self, new_state: dict[str, Any], result: object, target: str | None,
                jumped: bool, started: float, runtime: Runtime) -> Transition:
        """The step is done: go to ``target`` (``None``: the run is complete)."""
        step = self.step
        status, current = arrive(self.defn, target)
        detail = self.changes(new_state)
        if jumped:
            detail["next"] = current
        history = [HistoryEntry(step.name, StepOutcome.COMPLETED, self.attempt,
                                elapsed_ms(started), detail=detail or None)]
        if status == Status.WAITING_HUMAN:
            history.append(HistoryEntry(current, StepOutcome.WAITING, 1))
            runtime.waiting_for = current
        else:
            runtime.waiting_for = None
        active = status == Status.ACTIVE
        return Transition(
            update=RecordUpdate(status, current, new_state, runtime, error=None),
            history=history,
            step=step.name,
            result=result,
            jumped_to=current if jumped else None,
            # Ruvon: a jump (a directive or a route) stops the chaining at its target.
            auto_continue=active and step.automate_next is True and not jumped,
            hold=active and step.automate_next is False,
        )

    async def jump(self, state: BaseModel, jump: WorkflowJumpDirective,
                   started: float) -> Transition:
        target = jump.target_step_name
        if not self.defn.has_step(target):
            return await self.fail(StepFailed(self.step.name,
                                              f"jumped to '{target}', which names no step"),
                                   started, retry=False, compensate=False)
        try:
            new_state = merge_result(self.defn, state, jump.result, self.step.name)
        except StepFailed as exc:
            return await self.fail(exc, started, retry=False, compensate=False)
        runtime = self.runtime_after(completed=True)
        runtime.inserted = None  # a jump leaves any injected steps behind
        return self.advance(new_state, jump.result, target, True, started, runtime)

    async def pause(self, state: BaseModel, pause: WorkflowPauseDirective,
                    started: float) -> Transition:
        """The run waits (WAITING_HUMAN) at this step, as on Ruvon: the pause's result is
        not merged (what the step changed in place is kept). Resumed, a HUMAN_IN_LOOP step
        runs again with the input; any other goes on with the step after it."""
        step = self.step
        try:
            new_state = merge_result(self.defn, state, None, step.name)
        except StepFailed as exc:
            return await self.fail(exc, started, retry=False, compensate=False)
        runtime = self.runtime_after(completed=False)
        runtime.waiting_reason = PAUSED_IN_PLACE if self.kind.pauses_in_place else PAUSED
        runtime.waiting_for = pause.waiting_for or step.name
        return Transition(
            update=RecordUpdate(Status.WAITING_HUMAN, step.name, new_state, runtime),
            history=[HistoryEntry(step.name, StepOutcome.WAITING, self.attempt,
                                  elapsed_ms(started),
                                  detail={"waiting_for": runtime.waiting_for,
                                          **self.changes(new_state)})],
            step=step.name,
            result=pause.result,
        )

    def wait_for_child(self, state: BaseModel, child: StartSubWorkflowDirective,
                       started: float) -> Transition:
        runtime = self.runtime_after(completed=False)
        runtime.child = {"workflow_type": child.workflow_type}
        new_state = state.model_dump(mode="json")
        return Transition(
            update=RecordUpdate(Status.PENDING_SUB_WORKFLOW, self.step.name, new_state,
                                runtime),
            history=[HistoryEntry(self.step.name, StepOutcome.WAITING, self.attempt,
                                  elapsed_ms(started),
                                  detail={"sub_workflow": child.workflow_type,
                                          **self.changes(new_state)})],
            step=self.step.name,
            child=child,
        )

    def compensates(self, exc: BaseException | None) -> bool:
        """Whether failing for good with ``exc`` runs compensation functions."""
        return (self.defn.saga_enabled or self.record.runtime.saga_mode
                or isinstance(exc, SagaWorkflowException))

    def retry_delay(self, exc: BaseException, attempt: int | None = None) -> float | None:
        """Seconds until the next attempt when the retry policy runs the step (or a
        branch of it) again after ``exc``, else ``None``."""
        attempt = self.attempt if attempt is None else attempt
        policy = self.policy
        if policy is None or not is_retryable(exc) or attempt >= policy.max_attempts:
            return None
        return policy.delay_for(attempt)

    def _kept_state(self, state: BaseModel | None) -> dict[str, Any]:
        if state is None:
            return self.record.state
        try:
            return merge_result(self.defn, state, None, self.step.name)
        except StepFailed:
            return self.record.state

    async def fail(self, exc: BaseException | None, started: float | None = None, *,
                   error: dict[str, Any] | None = None, retry: bool = True,
                   compensate: bool = True, state: BaseModel | None = None) -> Transition:
        """A failed attempt: again after a delay if the retry policy allows (``retry``),
        otherwise the run fails, running its saga's compensations (``compensate=False``:
        not here, for the caller to hand them over). ``error``: an error recorded
        earlier, instead of ``exc``. ``state``: the model the step ran on; when the run
        fails for good, what the step changed in it before raising is kept (Ruvon), if
        the state model still accepts it; a retry starts from the stored state."""
        started = time.perf_counter() if started is None else started
        if error is None:
            assert exc is not None
            error = error_info(self.step.name, exc)
        delay = self.retry_delay(exc) if retry and exc is not None else None
        if delay is not None:
            runtime = self.record.runtime.copy()
            runtime.compensate = None
            runtime.attempts[self.step.name] = self.attempt
            runtime.execution = {"step": self.step.name, "version": self.execution_version}
            runtime.retry_at = time.time() + delay
            return Transition(
                update=RecordUpdate(Status.ACTIVE, self.step.name, self.record.state, runtime,
                                    error=error),
                history=[HistoryEntry(self.step.name, StepOutcome.RETRYING, self.attempt,
                                      elapsed_ms(started), error=error,
                                      detail={"retry_in_seconds": round(delay, 3)})],
                step=self.step.name,
                retry_delay=delay,
            )
        kept = self._kept_state(state)
        transition = Transition(
            update=RecordUpdate(Status.FAILED, self.step.name, kept,
                                self.runtime_after(completed=False), error=dict(error)),
            # What the step changed in place before it failed is kept, and said so.
            history=[HistoryEntry(self.step.name, StepOutcome.FAILED, self.attempt,
                                  elapsed_ms(started), error=error,
                                  detail=self.changes(kept) or None)],
            step=self.step.name,
            cause=exc,
        )
        if compensate and self.compensates(exc):
            await saga.compensate(self.defn, self.record, transition)
        return transition
