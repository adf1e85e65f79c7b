"""Failures Celery reports in the worker's main process, recorded on the workflow.

A pool process killed under a step (hard time limit, OOM killer, a crash in native code)
cannot fail the step itself; these hooks do it for the step instead.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Task
from celery.worker.request import Request
from celery.worker.state import task_ready

from .runtime import runtime_for

log = logging.getLogger("ruvon.fleet")


class StepRequest(Request):
    """A step message in the worker's main process.

    When the pool process running a step dies under it (the OOM killer, a crash in native
    code), Celery would put the message back and the step would kill a process again,
    forever. Instead the loss is counted on the workflow: the step is sent again up to
    ``RUVON_MAX_WORKER_LOST`` times, then the loss is a failed attempt (retry policy, then
    FAILED). If the count cannot be recorded, Celery's own handling applies (reject and
    requeue: the message is never dropped).
    """

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> Any:
        exc = exc_info.exception
        exc = getattr(exc, "exc", exc)  # ExceptionWithTraceback wraps it
        if isinstance(exc, WorkerLostError) and self._record_lost():
            task_ready(self)
            self.acknowledge()  # a new message replaces it
            return None
        return super().on_failure(exc_info, send_failed_event, return_ok)

    def _record_lost(self) -> bool:
        kwargs = self.kwargs if isinstance(self.kwargs, dict) else {}
        try:
            runtime = runtime_for(self.task.app)
            branch = kwargs.get("branch")
            return bool(runtime.run(runtime.coordinator.worker_lost(
                str(kwargs["workflow_id"]), str(kwargs["step"]), int(kwargs["version"]),
                None if branch is None else int(branch))))
        except Exception:
            log.exception("could not record the lost worker of %s; requeueing it", self.id)
            return False


class StepTask(Task):
    """A step task. A hard time limit kills the pool process before the step can fail
    itself; Celery then calls ``on_failure`` here, in the worker's main process, and the
    kill is recorded as a failed attempt of the step: its retry policy applies, and when
    it is exhausted the workflow fails (or rolls back). Without this the lease would
    re-send the step, and a step that always hangs would be killed forever. A pool
    process lost for another reason is handled by :class:`StepRequest`."""

    Request = StepRequest

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        if not isinstance(exc, TimeLimitExceeded) or not isinstance(kwargs, dict):
            return
        try:
            runtime = runtime_for(self.app)
            branch = kwargs.get("branch")
            runtime.run(runtime.coordinator.fail_step(
                str(kwargs["workflow_id"]), str(kwargs["step"]), int(kwargs["version"]),
                exc, branch=None if branch is None else int(branch)))
        except Exception:
            log.exception("could not record the time limit of %s; the recovery sweep will "
                          "re-send the step", task_id)
