"""Saga compensation: undo completed steps, newest first, when a run fails for good."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..definitions.models import WorkflowDefinition
from ..errors import StepFailed
from .changes import detached, state_changes
from .context import StepContext
from .records import HistoryEntry, Status, StepOutcome, WorkflowRecord
from .transition import elapsed_ms, error_info
from .values import call_step_function, merge_result

if TYPE_CHECKING:
    from .transition import Transition


async def compensate(defn: WorkflowDefinition, record: WorkflowRecord,
                     transition: Transition) -> None:
    """Run the compensations of completed steps in reverse order into ``transition``
    (each recorded), which then ends the run FAILED_ROLLED_BACK."""
    state_dict = transition.update.state
    compensated: list[str] = []
    failures: list[dict[str, Any]] = []
    for name in reversed(record.runtime.completed):
        if not defn.has_step(name):
            continue
        fn = defn.function(defn.step(name).compensate_function)
        if fn is None:
            continue
        started = time.perf_counter()
        before = detached(defn.state_model, state_dict)
        state = defn.state_model.model_validate(state_dict)
        context = StepContext(workflow_id=record.id, step_name=name,
                              idempotency_key=f"{record.id}:{name}:compensate",
                              workflow_type=record.workflow_type)
        try:
            # Ruvon: what a compensation returns is not merged; what it changes in the
            # state in place is kept (also when it then fails).
            await call_step_function(fn, state, context, {})
            state_dict = merge_result(defn, state, None, name)
        except Exception as exc:
            state_dict = _kept(defn, state, name, state_dict)
            err = error_info(name, exc)
            failures.append(err)
            transition.history.append(HistoryEntry(
                name, StepOutcome.COMPENSATION_FAILED, 1, elapsed_ms(started), error=err,
                detail=state_changes(before, state_dict) or None))
            continue
        compensated.append(name)
        transition.history.append(HistoryEntry(
            name, StepOutcome.COMPENSATED, 1, elapsed_ms(started),
            detail=state_changes(before, state_dict) or None))
    error = dict(transition.update.error or {})
    error["compensated"] = compensated
    if failures:
        error["compensation_failures"] = failures
    transition.update.state = state_dict
    transition.update.status = Status.FAILED_ROLLED_BACK
    transition.update.error = error
    transition.update.runtime.compensated = compensated


def _kept(defn: WorkflowDefinition, state: BaseModel, name: str,
          before: dict[str, Any]) -> dict[str, Any]:
    """The in-place changes of a compensation that failed, if the model accepts them."""
    try:
        return merge_result(defn, state, None, name)
    except StepFailed:
        return before
