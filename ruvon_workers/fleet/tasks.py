"""The fleet's tasks: one per step, and the three wire tasks producers send.

Each task is thin: it unpacks the message, calls the coordinator, and returns a small
report. A message the engine refuses is recorded in ``ruvon_dead_letters``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded

from ..definitions import Registry, StepDefinition
from ..errors import DatabaseError, RuvonError
from .failure_hooks import StepTask
from .messages import mapping, optional_text, step_message, text
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
            _register_step_task(app, step_task_name(defn.workflow_type, step.name), step,
                                defn.workflow_type)
    _register_step_task(app, EARLIER_STEP_TASK, None, None)


#: A database outage retries a task (step or producer's message) with backoff, 1 s
#: doubling to every 5 s, for about ten minutes, instead of dropping its message: a
#: restart or a failover of PostgreSQL is waited out, and work goes on within 5 s of its
#: end. A step still failing then is sent
#: again by the sweep when its lease expires; a producer's message is logged as failed,
#: with its arguments.
OUTAGE_RETRIES: dict[str, Any] = {
    "autoretry_for": (DatabaseError,), "retry_backoff": 1, "retry_backoff_max": 5,
    "retry_jitter": False, "max_retries": 120,
}

#: What a task lets through instead of refusing the message: a database outage (Celery
#: retries the task) and Celery's own signals (a soft time limit, a retry, a rejection).
PASS_THROUGH: tuple[type[BaseException], ...] = (DatabaseError, SoftTimeLimitExceeded,
                                                  Retry, Ignore, Reject)


def _register_step_task(app: Celery, name: str, step: StepDefinition | None,
                        workflow_type: str | None) -> None:
    """The task of ``step`` of ``workflow_type`` (both ``None``: the generic task, which
    runs any step of any type)."""
    options: dict[str, Any] = {}
    if step is not None and step.time_limit_seconds:
        options["soft_time_limit"] = step.time_limit_seconds
        options["time_limit"] = step.time_limit_seconds + HARD_LIMIT_GRACE
    if step is not None and step.rate_limit:
        options["rate_limit"] = step.rate_limit
    task_step = None if step is None else step.name

    @app.task(name=name, base=StepTask, bind=True, shared=False,
              acks_late=True,
              reject_on_worker_lost=True, ignore_result=True,
              **OUTAGE_RETRIES, **options)
    def run_step(self: Task, **kwargs: Any) -> dict[str, Any]:
        workflow_id = kwargs.get("workflow_id")
        shown_id = workflow_id if isinstance(workflow_id, str) else None
        try:
            message = step_message(kwargs, task_step)
            runtime = runtime_for(app)
            report = runtime.run(runtime.coordinator.handle_step(
                message.workflow_id, message.step, message.version, message.branch,
                workflow_type=workflow_type))
        except PASS_THROUGH:
            raise
        except Exception as exc:
            reason = _reason(exc)
            _dead_letter(self.name, shown_id, reason, kwargs)
            return {"applied": False, "reason": reason}
        if not report.applied:
            log.info("step %s of %s ignored: %s", message.step, message.workflow_id,
                     report.reason)
        return {"applied": report.applied, "status": report.status,
                "duration_ms": report.duration_ms, "retry": report.retry}


def _reason(exc: Exception) -> str:
    """Why a message is refused: the engine's own message, or the error's type too."""
    if isinstance(exc, RuvonError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _dead_letter(task: str, workflow_id: str | None, reason: str, payload: Any) -> None:
    """Record a refused message; a failure to record must not crash the worker."""
    log.error("refused %s (workflow %s): %s", task, workflow_id, reason)
    from .consumer import record_dead_letter

    record_dead_letter(task, workflow_id, reason, payload)


# Tasks are not ``shared``: each runs on the runtime of the app that registered it, so
# another app in the process must not take it over.
_WIRE_OPTIONS: dict[str, Any] = {
    "shared": False, "acks_late": True, "ignore_result": True, **OUTAGE_RETRIES,
}


def _operate(app: Celery, task: str, payload: dict[str, Any],
             operation: Callable[[Any], Any]) -> tuple[Any, dict[str, Any] | None]:
    """Run a coordinator operation for a wire task: ``(result, None)``, or, when the
    message is refused (a bad kwarg, or the engine says no), ``(None, {"error": ...})``
    with the refusal recorded. Database outages propagate, so Celery retries the task."""
    try:
        runtime = runtime_for(app)
        return runtime.run(operation(runtime.coordinator)), None
    except PASS_THROUGH:
        raise
    except Exception as exc:
        workflow_id = payload.get("workflow_id")
        reason = _reason(exc)
        _dead_letter(task, workflow_id if isinstance(workflow_id, str) else None, reason,
                     payload)
        return None, {"error": reason}


#: Namespace of the ids of workflows started by a wire message without a ``workflow_id``.
_WIRE_IDS = uuid.UUID("6d2f5c1e-8a4b-5f0e-9c3d-52755756f4e1")


def workflow_id_for(task_id: str | None) -> str | None:
    """The id of the workflow a start message makes when it names none: derived from the
    message's task id, so that the same message delivered twice (its worker died, a peer
    sent it again) starts one workflow."""
    return str(uuid.uuid5(_WIRE_IDS, task_id)) if task_id else None


def _register_wire_tasks(app: Celery) -> None:
    @app.task(name=START_TASK, bind=True, **_WIRE_OPTIONS)
    def start_workflow(self: Task, workflow_type: Any = None, initial_data: Any = None,
                       idempotency_key: Any = None, workflow_id: Any = None,
                       **extra: Any) -> dict[str, Any]:
        payload = {"workflow_type": workflow_type, "initial_data": initial_data,
                   "idempotency_key": idempotency_key, "workflow_id": workflow_id}

        def start(coordinator: Any) -> Any:
            return coordinator.start(
                text("workflow_type", workflow_type), mapping("initial_data", initial_data),
                idempotency_key=optional_text("idempotency_key", idempotency_key),
                workflow_id=(optional_text("workflow_id", workflow_id)
                             or workflow_id_for(self.request.id)))

        done, error = _operate(app, START_TASK, payload, start)
        if error:
            return error
        record, created = done
        return {"workflow_id": record.id, "created": created}

    @app.task(name=RESUME_TASK, **_WIRE_OPTIONS)
    def resume_workflow(workflow_id: Any = None, user_input: Any = None,
                        **extra: Any) -> dict[str, Any]:
        payload = {"workflow_id": workflow_id, "user_input": user_input}
        _, error = _operate(app, RESUME_TASK, payload, lambda c: c.resume(
            text("workflow_id", workflow_id), mapping("user_input", user_input)))
        return error or {"workflow_id": workflow_id}

    @app.task(name=CANCEL_TASK, **_WIRE_OPTIONS)
    def cancel_workflow(workflow_id: Any = None, reason: Any = "cancelled",
                        **extra: Any) -> dict[str, Any]:
        payload = {"workflow_id": workflow_id, "reason": reason}
        _, error = _operate(app, CANCEL_TASK, payload, lambda c: c.cancel(
            text("workflow_id", workflow_id),
            text("reason", "cancelled" if reason is None else reason)))
        return error or {"workflow_id": workflow_id}
