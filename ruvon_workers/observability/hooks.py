"""Where a worker records its metrics.

- Celery's signals: queue lag when a step task starts; outcome, step duration, retries
  and first steps (workflows started) when it ends; a pool process drops its live gauges
  when it exits.
- The coordinator's observers: a workflow ended (its duration); a recovery sweep re-sent
  steps. The store's query observers: query durations.
- Threads: every process samples its psycopg pools; the main process counts workflows
  by status every sweep interval and serves ``/metrics``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task, signals

from ..definitions import Registry
from ..engine.records import Status, WorkflowRecord
from ..engine.routing import arrive
from ..fleet import coordinator
from ..fleet.dispatch import SENT_AT_HEADER
from ..fleet.factory import BackgroundStore
from ..fleet.runtime import process_runtimes
from ..fleet.settings import step_task_name
from ..persistence import postgres
from . import metrics, multiproc

log = logging.getLogger("ruvon.metrics")

FAILED = frozenset(s.value for s in (Status.FAILED, Status.FAILED_ROLLED_BACK,
                                     Status.FAILED_CHILD_WORKFLOW))
#: Seconds between two samples of a process's pool statistics.
POOL_SAMPLE_INTERVAL = 1.0


@dataclass(frozen=True)
class StepTask:
    workflow_type: str
    step: str
    #: The workflow's version when the fleet runs its first step (-1: not the first step).
    #: A workflow is created at version 0; one whose first step waits for input is
    #: resumed (version 1) before that step runs.
    first_version: int = -1


def step_tasks(registry: Registry) -> dict[str, StepTask]:
    tasks: dict[str, StepTask] = {}
    for defn in registry:
        status, first = arrive(defn, defn.first_step)
        for step in defn.all_steps:
            first_version = -1
            if step.name == first:
                first_version = 0 if status == Status.ACTIVE else 1
            tasks[step_task_name(defn.workflow_type, step.name)] = StepTask(
                defn.workflow_type, step.name, first_version)
    return tasks


def outcome(state: str | None, retval: Any) -> str:
    """The ``outcome`` label of a finished step task (see ``metrics.OUTCOMES``)."""
    if state != "SUCCESS" or not isinstance(retval, dict):
        return "error"
    if "status" not in retval:
        return "rejected"
    if not retval.get("applied"):
        return "stale"
    if retval.get("retry"):
        return "retry"
    if retval.get("status") in FAILED:
        return "failed"
    return "applied"


def workflow_ended(record: WorkflowRecord) -> None:
    seconds = 0.0
    if record.created_at is not None:
        started = record.created_at
        if started.tzinfo is None:
            started = started.replace(tzinfo=dt.UTC)
        seconds = max((dt.datetime.now(dt.UTC) - started).total_seconds(), 0.0)
    metrics.workflow_duration.labels(workflow_type=record.workflow_type,
                                     status=str(record.status)).observe(seconds)


def on_coordinator(event: str, **data: Any) -> None:
    if event == "ended":
        workflow_ended(data["record"])
    elif event == "swept":
        metrics.recovery_redispatched.inc(data["sent"])
    elif event == "continued":
        step_continued(data["workflow_type"], data["report"])


def step_continued(workflow_type: str, report: Any) -> None:
    """A step that ran inside another step's task (``fleet.continuation``): the same
    counters and histograms as a step that came as its own message."""
    step = report.step or "unknown"
    retval = {"applied": report.applied, "status": report.status, "retry": report.retry}
    result = outcome("SUCCESS", retval)
    metrics.steps.labels(workflow_type=workflow_type, step_name=step, outcome=result).inc()
    if result in ("applied", "retry", "failed") and report.duration_ms is not None:
        metrics.step_duration.labels(step_name=step).observe(report.duration_ms / 1000)
    if result == "retry":
        metrics.step_retries.labels(workflow_type=workflow_type, step_name=step,
                                    cause="step_error").inc()


def sample_pools() -> None:
    active = maximum = 0
    for runtime in process_runtimes():
        stats = runtime.persistence.pool_stats()
        active += stats.get("pool_size", 0) - stats.get("pool_available", 0)
        maximum += stats.get("pool_max", 0)
    metrics.set_pool(max(active, 0), maximum)


def _epoch(iso: Any) -> float:
    if not isinstance(iso, str):
        return 0.0
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        return 0.0
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _version(kwargs: dict[str, Any] | None) -> int | None:
    try:
        return int((kwargs or {})["version"])
    except (KeyError, TypeError, ValueError):
        return None


class Periodic(threading.Thread):
    """Calls ``fn`` now and then every ``interval`` seconds until stopped."""

    def __init__(self, name: str, interval: float, fn: Any):
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.fn = fn
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.fn()
            except Exception as exc:
                log.debug("%s failed: %s", self.name, exc)
            if self.stopped.wait(self.interval):
                return


class StatusCounter:
    """Sets ``ruvon_workflows{status}`` from PostgreSQL (in the worker's main process)."""

    def __init__(self) -> None:
        self.store: BackgroundStore | None = None
        self.failing = False

    def __call__(self) -> None:
        if self.store is None:
            self.store = BackgroundStore("ruvon-metrics-loop")
        try:
            counts = self.store.run(self.store.persistence.count_by_status())
        except Exception as exc:
            if not self.failing:
                log.warning("cannot count workflows by status (will try again): %s", exc)
            self.failing = True
            return
        self.failing = False
        metrics.set_statuses(counts, [s.value for s in Status])

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


class WorkerHooks:
    def __init__(self, app: Celery, port: int, address: str):
        self.app = app
        self.port = port
        self.address = address
        self.tasks = step_tasks(app.ruvon_registry)
        self.threads: list[Periodic] = []
        self.status_counter = StatusCounter()

    # -- the worker's main process ---------------------------------------------------

    def ready(self, **_: Any) -> None:
        multiproc.serve(self.port, self.address)
        interval = self.app.ruvon_settings.sweep_interval
        self._start(Periodic("ruvon-metrics-status", interval, self.status_counter))
        self._start(Periodic("ruvon-metrics-pool", POOL_SAMPLE_INTERVAL, sample_pools))

    def shutting_down(self, **_: Any) -> None:
        for thread in self.threads:
            thread.stopped.set()
        self.status_counter.close()

    def _start(self, thread: Periodic) -> None:
        self.threads.append(thread)
        thread.start()

    # -- pool processes ----------------------------------------------------------------

    def process_started(self, **_: Any) -> None:
        self.threads = []  # the parent's threads did not survive the fork
        self._start(Periodic("ruvon-metrics-pool", POOL_SAMPLE_INTERVAL, sample_pools))

    def process_exiting(self, **_: Any) -> None:
        for thread in self.threads:
            thread.stopped.set()
        multiproc.mark_process_dead(os.getpid())

    # -- step tasks --------------------------------------------------------------------

    def task_started(self, task: Task | None = None, **_: Any) -> None:
        if task is None or task.name not in self.tasks:
            return
        request = task.request
        try:
            sent_at = float(request.get(SENT_AT_HEADER))
        except (TypeError, ValueError):
            return  # sent by a producer that does not stamp messages
        due = max(sent_at, _epoch(request.eta))
        queue = (request.delivery_info or {}).get("routing_key") or "unknown"
        metrics.queue_lag.labels(queue=queue).observe(max(time.time() - due, 0.0))

    def task_finished(self, task: Task | None = None, kwargs: dict[str, Any] | None = None,
                      retval: Any = None, state: str | None = None, **_: Any) -> None:
        info = self.tasks.get(task.name) if task is not None else None
        if info is None:
            return
        result = outcome(state, retval)
        metrics.steps.labels(workflow_type=info.workflow_type, step_name=info.step,
                             outcome=result).inc()
        if result in ("applied", "retry", "failed"):
            duration = retval.get("duration_ms")
            if isinstance(duration, int | float):
                metrics.step_duration.labels(step_name=info.step).observe(duration / 1000)
            if _version(kwargs) == info.first_version:
                metrics.workflows_started.labels(workflow_type=info.workflow_type).inc()
        if result == "retry":
            metrics.step_retries.labels(workflow_type=info.workflow_type, step_name=info.step,
                                        cause="step_error").inc()
        sample_pools()

    def task_retried(self, sender: Task | None = None, **_: Any) -> None:
        info = self.tasks.get(sender.name) if sender is not None else None
        if info is not None:
            metrics.step_retries.labels(workflow_type=info.workflow_type, step_name=info.step,
                                        cause="database").inc()


_installed: list[WorkerHooks] = []


def install(app: Celery, port: int, address: str) -> WorkerHooks:
    """Hook the metrics into this worker (once per process)."""
    if _installed:
        return _installed[0]
    hooks = WorkerHooks(app, port, address)
    _installed.append(hooks)
    postgres.QUERY_OBSERVERS.append(metrics.observe_query)
    coordinator.OBSERVERS.append(on_coordinator)
    metrics.init_labels([d.workflow_type for d in app.ruvon_registry])
    connections = (
        (signals.worker_ready, hooks.ready),
        (signals.worker_shutting_down, hooks.shutting_down),
        (signals.worker_process_init, hooks.process_started),
        (signals.worker_process_shutdown, hooks.process_exiting),
        (signals.task_prerun, hooks.task_started),
        (signals.task_postrun, hooks.task_finished),
        (signals.task_retry, hooks.task_retried),
    )
    for signal, receiver in connections:
        signal.connect(receiver, weak=False)
    return hooks
