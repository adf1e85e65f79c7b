"""Threads a worker's main process runs beside Celery: the recovery sweep, the CRON
scheduler and the liveness heartbeat (none depends on the broker being up)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from celery import Celery

from ..persistence.base import WorkerStore
from ..utils.loop import LoopThread
from .coordinator import Coordinator
from .epoch import BrokerEpoch
from .factory import build_coordinator, build_store
from .held import held_messages, held_requests, held_steps

log = logging.getLogger("ruvon.background")

DEFAULT_HEARTBEAT_FILE = "/tmp/ruvon-worker.heartbeat"
HEARTBEAT_INTERVAL = 10.0


def heartbeat_path() -> Path:
    return Path(os.getenv("RUVON_HEARTBEAT_FILE", DEFAULT_HEARTBEAT_FILE))


class Heartbeat(threading.Thread):
    """Touches the heartbeat file; ``ruvon-workers health live`` reads its age."""

    def __init__(self, path: Path | None = None, interval: float = HEARTBEAT_INTERVAL):
        super().__init__(name="ruvon-heartbeat", daemon=True)
        self.path = path or heartbeat_path()
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(f"{os.getpid()} {time.time():.0f}\n")
            except OSError as exc:
                log.warning("cannot write heartbeat %s: %s", self.path, exc)
            self.stopped.wait(self.interval)


class WorkerBeat(threading.Thread):
    """Records in PostgreSQL, every ``interval`` seconds (sooner after a message arrives,
    at most every ``MIN_GAP``), that this worker lives and what it holds (``held``):
    the leases of its steps are renewed while it lives, and a peer's sweep sends its
    steps and producers' messages again soon after it stops (see ``WorkerStore``). One
    statement per beat, whatever the number of steps.

    Each beat also reads the broker's epoch marker (``epoch``); when it changed, the
    broker lost its messages, and ``on_broker_lost`` wakes this worker's sweep."""

    MIN_GAP = 0.5

    def __init__(self, app: Celery, interval: float,
                 on_broker_lost: Callable[[], None] | None = None):
        super().__init__(name="ruvon-worker-beat", daemon=True)
        self.app = app
        self.interval = interval
        self.name_in_db = f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"
        self.stopped = threading.Event()
        self.woken = threading.Event()
        self.beats = 0
        self.on_broker_lost = on_broker_lost
        self.epoch = BrokerEpoch.for_url(app.conf.broker_write_url or app.conf.broker_url)
        self.noted_epoch: str | None = None

    def wake(self) -> None:
        self.woken.set()

    def run(self) -> None:
        loop = LoopThread(name="ruvon-worker-beat-loop")
        persistence = build_store("background")
        lease = self.app.ruvon_settings.lease_seconds
        try:
            while not self.stopped.is_set():
                started = time.monotonic()
                try:
                    loop.run(persistence.initialize())
                    requests = held_requests()
                    loop.run(persistence.beat(self.name_in_db, held_steps(requests), lease,
                                              held_messages(requests)))
                    self.beats += 1
                    self.check_broker(loop, persistence)
                except Exception as exc:
                    log.warning("worker beat failed (will try again): %s", exc)
                self.woken.wait(self.interval)
                self.woken.clear()
                self.stopped.wait(max(0.0, self.MIN_GAP - (time.monotonic() - started)))
            try:  # a clean stop: peers need not wait for this worker to fall silent
                loop.run(persistence.forget_worker(self.name_in_db), timeout=5)
            except Exception as exc:
                log.warning("could not remove this worker's beat: %s", exc)
        finally:
            if self.epoch is not None:
                self.epoch.close()
            try:
                loop.run(persistence.close(), timeout=5)
            finally:
                loop.stop()

    def check_broker(self, loop: LoopThread, persistence: WorkerStore) -> None:
        """Record the broker's epoch marker; when it changed, wake the sweep."""
        if self.epoch is None:
            return
        try:
            epoch = self.epoch.current()
        except Exception as exc:
            log.warning("cannot read the broker's epoch marker (will try again): %s", exc)
            return
        if epoch == self.noted_epoch:
            return
        changed, made_due = loop.run(persistence.note_broker_epoch(self.epoch.name, epoch))
        self.noted_epoch = epoch
        if changed:
            log.warning("the broker %s lost its messages (its epoch marker changed): %d "
                        "step(s) that may have been queued there are sent again",
                        self.epoch.name, made_due)
        if changed and self.on_broker_lost is not None:
            self.on_broker_lost()


class Sweeper(threading.Thread):
    """Runs the recovery sweep every ``interval`` seconds (with jitter).

    Every worker runs one. Concurrent sweeps are safe: a sweep claims due rows with
    ``FOR UPDATE SKIP LOCKED`` and moves their lease forward in the same statement, so
    each expired step is re-sent by one sweeper, and a duplicate send would be a no-op.
    """

    what = "recovery sweep"

    def __init__(self, app: Celery, interval: float):
        super().__init__(name=f"ruvon-{self.what.split()[-1]}", daemon=True)
        self.app = app
        self.interval = interval
        self.stopped = threading.Event()
        self.woken = threading.Event()
        self.runs = 0

    def wake(self) -> None:
        """Run now rather than at the next interval."""
        self.woken.set()


    def action(self, coordinator: Coordinator) -> Coroutine[Any, Any, int]:
        return coordinator.sweep()

    def run(self) -> None:
        loop = LoopThread(name=f"{self.name}-loop")
        persistence = build_store("background")
        coordinator = build_coordinator(persistence, app=self.app)
        try:
            while True:
                self.woken.wait(self.interval * random.uniform(0.8, 1.2))
                self.woken.clear()
                if self.stopped.is_set():
                    break
                try:
                    loop.run(persistence.initialize())
                    loop.run(self.action(coordinator))
                    self.runs += 1
                except Exception as exc:
                    log.warning("%s failed (will try again): %s", self.what, exc)
        finally:
            try:
                loop.run(persistence.close(), timeout=5)
            finally:
                loop.stop()


class Retention(Sweeper):
    """Removes ended workflows and dead letters older than ``RUVON_RETENTION_DAYS``, in
    short batches (``db purge``). Every worker runs one; concurrent runs skip each
    other's rows."""

    what = "retention run"

    def action(self, coordinator: Coordinator) -> Coroutine[Any, Any, Any]:
        days = coordinator.settings.retention_days
        before = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        return self._purge(coordinator, before)

    @staticmethod
    async def _purge(coordinator: Coordinator, before: dt.datetime) -> int:
        workflows, letters = await coordinator.persistence.purge(before)
        if workflows or letters:
            log.info("retention: removed %d ended workflow(s) and %d dead letter(s)",
                     workflows, letters)
        return workflows + letters


class Scheduler(Sweeper):
    """Fires due CRON schedules (``ruvon_workers.scheduling``). Every worker runs one;
    each tick still starts its workflow once (idempotency key per schedule and tick)."""

    what = "cron scheduler"

    def action(self, coordinator: Coordinator) -> Coroutine[Any, Any, int]:
        return coordinator.fire_schedules()
