"""The fleet's Celery application: configuration and one task per step.

``create_app()`` reads ``CELERY_BROKER_URL`` and ``RUVON_REGISTRY``; the module-level
``app`` (``celery -A ruvon_workers.fleet.app``) is built on first access.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Celery, Task, signals
from celery.worker.request import Request
from celery.worker.state import task_ready
from kombu import Exchange, Queue

from ..definitions import Registry, StepDefinition, load_registry
from ..errors import DatabaseError, RuvonError
from ..settings import broker_url, float_env, registry_path
from ..utils.loop import install_uvloop
from ..utils.serialization import _env_flag
from .runtime import runtime_for
from .settings import HARD_LIMIT_GRACE, FleetSettings, step_task_name

log = logging.getLogger("ruvon.fleet")

START_TASK = "ruvon.start_workflow"
RESUME_TASK = "ruvon.resume_workflow"
CANCEL_TASK = "ruvon.cancel_workflow"


@signals.worker_init.connect(weak=False)
def _worker_event_loop(**_: Any) -> None:
    # A worker started as `celery -A ruvon_workers.fleet.app worker` (not through the
    # ruvon-workers command) installs uvloop too, before its pool processes fork.
    install_uvloop()


def create_app(registry: Registry | None = None, broker: str | None = None,
               settings: FleetSettings | None = None) -> Celery:
    registry = registry or load_registry(registry_path())
    settings = settings or FleetSettings.from_env()
    url = broker_url(broker)
    app = Celery("ruvon_workers", broker=url, set_as_current=False)
    queues = {settings.default_queue} | {settings.queue_for(s) for d in registry
                                         for s in d.all_steps}
    app.conf.update(
        # Celery lets CELERY_BROKER_URL in the environment win over the broker argument;
        # the read/write URLs make the argument stick.
        broker_read_url=url,
        broker_write_url=url,
        # Only JSON crosses the broker: never pickle.
        task_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        result_serializer="json",
        # Progress lives in PostgreSQL; no result backend is needed.
        task_ignore_result=True,
        result_backend=None,
        # At-least-once: ack after the step committed; a lost worker's message returns.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout(registry),
            "ack_emulation": _env_flag("RUVON_ACK_EMULATION", False),
        },
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.default_queue,
        # Queues hang off the default exchange: a message goes straight to the list named
        # after its queue, with no binding table in Redis to lose (a flushed or restarted
        # Redis would otherwise drop every message published to a named exchange).
        task_queues=[Queue(name, exchange=Exchange("", type="direct"), routing_key=name)
                     for name in sorted(queues)],
        task_create_missing_queues=True,
        worker_consumer="ruvon_workers.fleet.consumer:SafeConsumer",
        worker_soft_shutdown_timeout=float_env("RUVON_SOFT_SHUTDOWN_TIMEOUT", 60.0),
        worker_enable_soft_shutdown_on_idle=True,
        # Task events cost three extra publishes per step in the worker's main process;
        # they are off unless RUVON_TASK_EVENTS=true. Flower switches them on in the
        # running fleet when it starts (it broadcasts enable_events).
        worker_send_task_events=_env_flag("RUVON_TASK_EVENTS", False),
        task_send_sent_event=False,
    )
    app.ruvon_registry = registry
    app.ruvon_settings = settings
    _register_wire_tasks(app)
    for defn in registry:
        for step in defn.all_steps:
            _register_step_task(app, defn.workflow_type, step)
    return app


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


def _register_step_task(app: Celery, workflow_type: str, step: StepDefinition) -> None:
    options: dict[str, Any] = {}
    if step.time_limit_seconds:
        options["soft_time_limit"] = step.time_limit_seconds
        options["time_limit"] = step.time_limit_seconds + HARD_LIMIT_GRACE
    if step.rate_limit:
        options["rate_limit"] = step.rate_limit

    @app.task(name=step_task_name(workflow_type, step.name), base=StepTask, bind=True,
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
# dropping the producer's message.
_WIRE_OPTIONS: dict[str, Any] = {
    "acks_late": True, "ignore_result": True, "autoretry_for": (DatabaseError,),
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


_app: Celery | None = None


def __getattr__(name: str) -> Any:
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)
