"""Start a Celery worker for the fleet (``ruvon-workers worker``)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from ..utils.loop import install_uvloop
from .background import Heartbeat, Retention, Scheduler, Sweeper, WorkerBeat
from .held import WIRE_TASKS, held_requests, is_step_task, message_of, send_all_again

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
    """Send again the fleet's messages this worker took but will not run: steps and
    producers' messages, reserved or waiting on a countdown.

    On Redis the fleet does not use kombu's ack emulation (PostgreSQL leases and the
    worker beat recover lost messages instead), so messages prefetched by a worker that
    shuts down would otherwise wait to be recovered. Sending them again is safe: a
    duplicate step is a no-op, and a start sent again finds the workflow it made.
    """
    waiting = [message_of(r) for r in held_requests(active=False)
               if is_step_task(str(r.name)) or r.name in WIRE_TASKS]
    if not waiting:
        return 0
    sent, _ = send_all_again(app, waiting)
    log.info("shutting down: re-sent %d message(s) this worker had taken but not started",
             sent)
    return sent


def run_worker(app: Celery, argv: list[str], *, sweep: bool = True) -> None:
    """Run the worker until it shuts down (warm on SIGTERM, finishing running steps)."""
    threads: list[Any] = []

    beats: list[WorkerBeat] = []

    @signals.worker_ready.connect(weak=False)
    def _started(sender: Any = None, **_: Any) -> None:
        sweeper = Sweeper(app, app.ruvon_settings.sweep_interval) if sweep else None
        beats.append(WorkerBeat(app, app.ruvon_settings.worker_beat,
                                on_broker_lost=sweeper.wake if sweeper else None))
        threads.extend([Heartbeat(), *beats])
        if sweeper is not None:
            threads.append(sweeper)
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
            woken = getattr(thread, "woken", None)
            if woken is not None:
                woken.set()

    from . import transport

    install_uvloop()  # pool processes inherit the policy
    transport.install()
    app.worker_main(argv)
