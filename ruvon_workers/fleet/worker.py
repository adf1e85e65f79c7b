"""Start a Celery worker for the fleet (``ruvon-workers worker``)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from ..utils.loop import install_uvloop
from .background import Heartbeat, Retention, Scheduler, Sweeper, WorkerBeat

log = logging.getLogger("ruvon.worker")


def worker_argv(app: Celery, *, concurrency: int | None, pool: str | None,
                queues: str | None, loglevel: str, hostname: str | None,
                extra: tuple[str, ...] = ()) -> list[str]:
    settings = app.ruvon_settings
    registry = app.ruvon_registry
    if not queues:
        names = {settings.default_queue} | {settings.queue_for(s) for d in registry
                                            for s in d.all_steps}
        queues = ",".join(sorted(names))
    argv = ["worker", f"--loglevel={loglevel}", f"--queues={queues}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if pool:
        argv.append(f"--pool={pool}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    argv.extend(extra)
    return argv


def resend_reserved(app: Celery) -> int:
    """Send again the step messages this worker took but will not run.

    On Redis the fleet does not use kombu's ack emulation (PostgreSQL leases recover lost
    messages instead), so messages prefetched by a worker that shuts down would otherwise
    wait for their lease to expire. Sending them again is safe: a duplicate is a no-op.
    """
    from celery.worker import state

    from .dispatch import Dispatcher

    active = {r.id for r in state.active_requests}
    waiting = [r for r in list(state.reserved_requests)
               if r.id not in active and r.name.startswith("ruvon.step.")]
    if not waiting:
        return 0
    dispatcher = Dispatcher(app, app.ruvon_registry, app.ruvon_settings)
    sent = 0
    for request in waiting:
        kwargs = request.kwargs or {}
        workflow_type = request.name.split(".")[2]
        try:
            branch = kwargs.get("branch")
            dispatcher.step(workflow_type, kwargs["step"], kwargs["workflow_id"],
                            int(kwargs["version"]),
                            branch=None if branch is None else int(branch))
            sent += 1
        except Exception as exc:  # the sweep re-sends it when its lease expires
            log.warning("could not re-send %s on shutdown: %s", request.id, exc)
    log.info("shutting down: re-sent %d step(s) this worker had taken but not started", sent)
    return sent


def run_worker(app: Celery, argv: list[str], *, sweep: bool = True) -> None:
    """Run the worker until it shuts down (warm on SIGTERM, finishing running steps)."""
    threads: list[Any] = []

    beats: list[WorkerBeat] = []

    @signals.worker_ready.connect(weak=False)
    def _started(sender: Any = None, **_: Any) -> None:
        beats.append(WorkerBeat(app, app.ruvon_settings.worker_beat))
        threads.extend([Heartbeat(), *beats])
        if sweep:
            threads.append(Sweeper(app, app.ruvon_settings.sweep_interval))
        if sweep and app.ruvon_settings.scheduler_interval > 0:
            threads.append(Scheduler(app, app.ruvon_settings.scheduler_interval))
        if sweep and app.ruvon_settings.retention_days > 0:
            threads.append(Retention(app, app.ruvon_settings.retention_interval))
        for thread in threads:
            thread.start()
        log.info("ruvon worker ready: %d workflow type(s), sweep every %.0fs",
                 len(app.ruvon_registry.workflows),
                 app.ruvon_settings.sweep_interval)

    @signals.task_received.connect(weak=False)
    def _received(**_: Any) -> None:
        for beat in beats:
            beat.wake()  # record the new step soon, not at the next regular beat

    @signals.worker_shutting_down.connect(weak=False)
    def _stopping(**_: Any) -> None:
        resend_reserved(app)
        for thread in threads:
            thread.stopped.set()
        for beat in beats:
            beat.wake()

    from . import transport

    install_uvloop()  # pool processes inherit the policy
    transport.install()
    app.worker_main(argv)
