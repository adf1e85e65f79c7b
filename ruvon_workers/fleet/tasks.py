"""The fleet's tasks: one per step, and the three wire tasks producers send.

Each task is thin: it unpacks the message, calls the coordinator, and returns a small
report. A message the engine refuses is recorded in ``ruvon_dead_letters``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, Task

from ..definitions import Registry, StepDefinition
from ..errors import DatabaseError, RuvonError
from .failure_hooks import StepTask
from .runtime import runtime_for
from .settings import EARLIER_STEP_TASK, HARD_LIMIT_GRACE, step_task_name

log = logging.getLogger("ruvon.fleet")

START_TASK = "ruvon.start_workflow"
RESUME_TASK = "ruvon.resume_workflow"
CANCEL_TASK = "ruvon.cancel_workflow"


def register_tasks(app: Celery, registry: Registry) -> None:
    """Register the wire tasks, then one task per step of every registered workflow, and
    the task that runs a step only an earlier definition has (a run that started before
    its file changed)."""
    _register_wire_tasks(app)
    for defn in registry:
        for step in defn.all_steps:
            _register_step_task(app, step_task_name(defn.workflow_type, step.name), step)
    _register_step_task(app, EARLIER_STEP_TASK, None)


def _register_step_task(app: Celery, name: str, step: StepDefinition | None) -> None:
    options: dict[str, Any] = {}
    if step is not None and step.time_limit_seconds:
        options["soft_time_limit"] = step.time_limit_seconds
        options["time_limit"] = step.time_limit_seconds + HARD_LIMIT_GRACE
    if step is not None and step.rate_limit:
        options["rate_limit"] = step.rate_limit

    @app.task(name=name, base=StepTask, bind=True, shared=False,
              acks_late=True,
              reject_on_worker_lost=True, ignore_result=True,
              autoretry_for=(DatabaseError,), retry_backoff=1, retry_backoff_max=30,
              max_retries=5, **options)
    def run_step(self: Task, workflow_id: str | None = None, step: str | None = None,
                 version: int | None = None, branch: int | None = None,
                 **extra: Any) -> dict[str, Any]:
        if not workflow_id or not step or version is None:
            _dead_letter(self.name, workflow_id, "step message needs workflow_id, step and "
                         "version", {"workflow_id": workflow_id, "step": step,
                                     "version": version, **extra})
            return {"applied": False, "reason": "malformed step message"}
        runtime = runtime_for(app)
        try:
            report = runtime.run(runtime.coordinator.handle_step(
                str(workflow_id), str(step), int(version),
                None if branch is None else int(branch)))
        except RuvonError as exc:
            if isinstance(exc, DatabaseError):
                raise
            _dead_letter(self.name, str(workflow_id), str(exc), {"step": step,
                                                                  "version": version})
            return {"applied": False, "reason": str(exc)}
        if not report.applied:
            log.info("step %s of %s ignored: %s", step, workflow_id, report.reason)
        return {"applied": report.applied, "status": report.status,
                "duration_ms": report.duration_ms, "retry": report.retry}


def _dead_letter(task: str, workflow_id: str | None, reason: str, payload: Any) -> None:
    """Record a refused message; a failure to record must not crash the worker."""
    log.error("refused %s (workflow %s): %s", task, workflow_id, reason)
    from .consumer import record_dead_letter

    record_dead_letter(task, workflow_id, reason, payload)


# A database outage retries a wire task with backoff (about a minute in all) instead of
# dropping the producer's message. Tasks are not ``shared``: each runs on the runtime of
# the app that registered it, so another app in the process must not take it over.
_WIRE_OPTIONS: dict[str, Any] = {
    "shared": False, "acks_late": True, "ignore_result": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": 1, "retry_backoff_max": 30, "max_retries": 6,
}


def _operate(app: Celery, task: str, workflow_id: str | None, payload: dict[str, Any],
             operation: Callable[[Any], Any]) -> tuple[Any, dict[str, Any] | None]:
    """Run a coordinator operation for a wire task: ``(result, None)``, or, when the engine
    refuses the message, ``(None, {"error": ...})`` with the refusal recorded. Database
    outages propagate, so Celery retries the task."""
    runtime = runtime_for(app)
    try:
        return runtime.run(operation(runtime.coordinator)), None
    except DatabaseError:
        raise
    except (RuvonError, ValueError) as exc:
        _dead_letter(task, workflow_id, str(exc), payload)
        return None, {"error": str(exc)}


def _register_wire_tasks(app: Celery) -> None:
    @app.task(name=START_TASK, **_WIRE_OPTIONS)
    def start_workflow(workflow_type: str | None = None, initial_data: Any = None,
                       idempotency_key: str | None = None, workflow_id: str | None = None,
                       **extra: Any) -> dict[str, Any]:
        payload = {"workflow_type": workflow_type, "initial_data": initial_data,
                   "idempotency_key": idempotency_key, "workflow_id": workflow_id}
        if not workflow_type:
            _dead_letter(START_TASK, workflow_id, "start_workflow needs workflow_type", payload)
            return {"error": "missing workflow_type"}
        done, error = _operate(app, START_TASK, workflow_id, payload, lambda c: c.start(
            workflow_type, initial_data, idempotency_key=idempotency_key,
            workflow_id=workflow_id))
        if error:
            return error
        record, created = done
        return {"workflow_id": record.id, "created": created}

    @app.task(name=RESUME_TASK, **_WIRE_OPTIONS)
    def resume_workflow(workflow_id: str | None = None, user_input: Any = None,
                        **extra: Any) -> dict[str, Any]:
        payload = {"workflow_id": workflow_id, "user_input": user_input}
        if not workflow_id or not isinstance(user_input or {}, dict):
            _dead_letter(RESUME_TASK, workflow_id, "resume_workflow needs workflow_id and a "
                         "user_input object", payload)
            return {"error": "malformed resume message"}
        _, error = _operate(app, RESUME_TASK, str(workflow_id), payload,
                            lambda c: c.resume(str(workflow_id), user_input or {}))
        return error or {"workflow_id": workflow_id}

    @app.task(name=CANCEL_TASK, **_WIRE_OPTIONS)
    def cancel_workflow(workflow_id: str | None = None, reason: str = "cancelled",
                        **extra: Any) -> dict[str, Any]:
        payload = {"workflow_id": workflow_id, "reason": reason}
        if not workflow_id:
            _dead_letter(CANCEL_TASK, None, "cancel_workflow needs workflow_id", payload)
            return {"error": "missing workflow_id"}
        _, error = _operate(app, CANCEL_TASK, str(workflow_id), payload,
                            lambda c: c.cancel(str(workflow_id), str(reason)))
        return error or {"workflow_id": workflow_id}
