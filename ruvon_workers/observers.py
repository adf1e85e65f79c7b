"""Workflow observers: Ruvon's observer protocol, told what each committed transition did.

An observer subclasses :class:`WorkflowObserver` and overrides the coroutines it cares
about; every method is a no-op by default (the names and arguments are Ruvon's). Pass one
as ``workflow_observer=`` to ``WorkflowBuilder.create_workflow`` / ``load_workflow``: the
in-process provider reports each transition after it commits. An observer that raises is
logged and ignored; it never changes what the workflow does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .engine.records import HistoryEntry, Status, StepOutcome, WorkflowRecord
from .engine.transition import Transition

log = logging.getLogger("ruvon.observer")


class WorkflowObserver:
    """Ruvon's ``WorkflowObserver``: every method is an async no-op by default."""

    async def initialize(self) -> None: ...

    async def close(self) -> None: ...

    async def on_workflow_started(self, workflow_id: str, workflow_type: str,
                                  initial_state: Any) -> None: ...

    async def on_step_executed(self, workflow_id: str, step_name: str, step_index: int,
                               status: str, result: Any, current_state: Any,
                               duration_ms: float | None = None) -> None: ...

    async def on_workflow_completed(self, workflow_id: str, workflow_type: str,
                                    final_state: Any) -> None: ...

    async def on_workflow_failed(self, workflow_id: str, workflow_type: str,
                                 error_message: str, current_state: Any) -> None: ...

    async def on_workflow_status_changed(self, workflow_id: str, old_status: str,
                                         new_status: str, current_step_name: str | None,
                                         final_result: Any = None) -> None: ...

    async def on_workflow_rolled_back(self, workflow_id: str, workflow_type: str,
                                      message: str, current_state: Any,
                                      completed_steps_stack: list[Any]) -> None: ...

    async def on_step_failed(self, workflow_id: str, step_name: str, step_index: int,
                             error_message: str, current_state: Any) -> None: ...

    async def on_workflow_paused(self, workflow_id: str, step_name: str | None,
                                 reason: str) -> None: ...

    async def on_workflow_resumed(self, workflow_id: str, step_name: str | None,
                                  resume_data: Any) -> None: ...

    async def on_compensation_started(self, workflow_id: str, step_name: str,
                                      step_index: int) -> None: ...

    async def on_compensation_completed(self, workflow_id: str, step_name: str,
                                        success: bool, error: str | None = None) -> None: ...

    async def on_child_workflow_started(self, parent_id: str, child_id: str,
                                        child_type: str) -> None: ...


class NoopWorkflowObserver(WorkflowObserver):
    """Observes nothing."""


class LoggingObserver(WorkflowObserver):
    """Logs every event on the ``ruvon.observer`` logger (INFO; failures at WARNING)."""

    async def on_workflow_started(self, workflow_id: str, workflow_type: str,
                                  initial_state: Any) -> None:
        log.info("workflow %s (%s) started", workflow_id, workflow_type)

    async def on_step_executed(self, workflow_id: str, step_name: str, step_index: int,
                               status: str, result: Any, current_state: Any,
                               duration_ms: float | None = None) -> None:
        log.info("workflow %s: step %s %s%s", workflow_id, step_name, status,
                 "" if duration_ms is None else f" in {duration_ms:.1f} ms")

    async def on_workflow_completed(self, workflow_id: str, workflow_type: str,
                                    final_state: Any) -> None:
        log.info("workflow %s (%s) completed", workflow_id, workflow_type)

    async def on_workflow_failed(self, workflow_id: str, workflow_type: str,
                                 error_message: str, current_state: Any) -> None:
        log.warning("workflow %s (%s) failed: %s", workflow_id, workflow_type, error_message)

    async def on_workflow_rolled_back(self, workflow_id: str, workflow_type: str,
                                      message: str, current_state: Any,
                                      completed_steps_stack: list[Any]) -> None:
        log.warning("workflow %s (%s) rolled back: %s", workflow_id, workflow_type, message)

    async def on_step_failed(self, workflow_id: str, step_name: str, step_index: int,
                             error_message: str, current_state: Any) -> None:
        log.warning("workflow %s: step %s failed: %s", workflow_id, step_name, error_message)

    async def on_workflow_paused(self, workflow_id: str, step_name: str | None,
                                 reason: str) -> None:
        log.info("workflow %s paused at %s: %s", workflow_id, step_name, reason)

    async def on_compensation_completed(self, workflow_id: str, step_name: str,
                                        success: bool, error: str | None = None) -> None:
        log.info("workflow %s: compensation of %s %s", workflow_id, step_name,
                 "done" if success else f"failed: {error}")


_EXECUTED = {StepOutcome.COMPLETED: "COMPLETED", StepOutcome.WAITING: "PAUSED_HUMAN"}
_FAILED = {Status.FAILED, Status.FAILED_CHILD_WORKFLOW}


async def report(observer: WorkflowObserver | None, before: WorkflowRecord,
                 transition: Transition, after: WorkflowRecord,
                 step_index: int = -1) -> None:
    """Tell ``observer`` what ``transition`` did, once it committed (``before`` is the run
    as it was, ``after`` as it is now)."""
    if observer is None:
        return
    try:
        await _report(observer, before, transition, after, step_index)
    except Exception:
        log.exception("workflow observer %s failed; the workflow goes on",
                      type(observer).__name__)


async def _report(observer: WorkflowObserver, before: WorkflowRecord,
                  transition: Transition, after: WorkflowRecord, index: int) -> None:
    wid, state = after.id, after.state
    for entry in transition.history:
        if entry.step is None:
            continue
        if entry.status in _EXECUTED and entry.step == transition.step:
            status = _EXECUTED[StepOutcome(entry.status)]
            if transition.child is not None:
                status = "DISPATCHED_SUB_WORKFLOW"
            elif transition.jumped_to is not None and status == "COMPLETED":
                status = "JUMPED"
            await observer.on_step_executed(wid, entry.step, index, status,
                                            transition.result, state, entry.duration_ms)
        elif entry.status in (StepOutcome.FAILED, StepOutcome.RETRYING):
            await observer.on_step_failed(wid, entry.step, index,
                                          (entry.error or {}).get("message", ""), state)
        elif entry.status in (StepOutcome.COMPENSATED, StepOutcome.COMPENSATION_FAILED):
            ok = entry.status == StepOutcome.COMPENSATED
            await observer.on_compensation_completed(
                wid, entry.step, ok, None if ok else (entry.error or {}).get("message"))
    await _report_status(observer, before, after, transition.result)


async def report_history(observer: WorkflowObserver | None, before: WorkflowRecord,
                         after: WorkflowRecord, history: list[HistoryEntry],
                         index_of: Callable[[str], int]) -> None:
    """Tell ``observer`` what the fleet did between ``before`` and ``after`` (a run the
    caller waited for), from the history rows committed in between."""
    if observer is None:
        return
    try:
        for entry in history:
            if entry.step is None:
                continue
            index = index_of(entry.step)
            if entry.status in _EXECUTED:
                await observer.on_step_executed(after.id, entry.step, index,
                                                _EXECUTED[StepOutcome(entry.status)], None,
                                                after.state, entry.duration_ms)
            elif entry.status in (StepOutcome.FAILED, StepOutcome.RETRYING):
                await observer.on_step_failed(after.id, entry.step, index,
                                              (entry.error or {}).get("message", ""),
                                              after.state)
            elif entry.status in (StepOutcome.COMPENSATED, StepOutcome.COMPENSATION_FAILED):
                ok = entry.status == StepOutcome.COMPENSATED
                await observer.on_compensation_completed(
                    after.id, entry.step, ok, None if ok else (entry.error or {}).get("message"))
        await _report_status(observer, before, after, None)
    except Exception:
        log.exception("workflow observer %s failed; the workflow goes on",
                      type(observer).__name__)


async def _report_status(observer: WorkflowObserver, before: WorkflowRecord,
                         after: WorkflowRecord, result: Any) -> None:
    wid, state = after.id, after.state
    if before.status == after.status:
        return
    await observer.on_workflow_status_changed(wid, before.status, after.status,
                                              after.current_step, result)
    error = (after.error or {}).get("message", "")
    if after.status == Status.COMPLETED:
        await observer.on_workflow_completed(wid, after.workflow_type, state)
    elif after.status in _FAILED:
        await observer.on_workflow_failed(wid, after.workflow_type, error, state)
    elif after.status == Status.FAILED_ROLLED_BACK:
        await observer.on_workflow_rolled_back(wid, after.workflow_type, error, state,
                                               list(after.runtime.compensated or []))
    elif after.status == Status.WAITING_HUMAN:
        await observer.on_workflow_paused(wid, after.current_step,
                                          after.runtime.waiting_for or "input")


async def started(observer: WorkflowObserver, record: WorkflowRecord) -> None:
    """Tell ``observer`` a workflow was created (logged and ignored if it raises)."""
    try:
        await observer.on_workflow_started(record.id, record.workflow_type, record.state)
    except Exception:
        log.exception("workflow observer %s failed; the workflow goes on",
                      type(observer).__name__)
