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
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from celery import Celery

from ..persistence.base import Held
from ..utils.loop import LoopThread
from .coordinator import Coordinator
from .factory import build_coordinator, build_store

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


def held_steps() -> list[Held]:
    """The steps and branches this worker holds: running, reserved or prefetched."""
    from celery.worker import state

    for _ in range(3):  # the consumer thread may change the sets while they are read
        try:
            requests = [*state.active_requests, *state.reserved_requests]
            break
        except RuntimeError:
            continue
    else:
        return []
    held: dict[tuple[str, int, int | None], None] = {}
    for request in requests:
        kwargs = request.kwargs or {}
        if not str(request.name).startswith("ruvon.step"):
            continue
        try:
            branch = kwargs.get("branch")
            held[(str(kwargs["workflow_id"]), int(kwargs["version"]),
                  None if branch is None else int(branch))] = None
        except (KeyError, TypeError, ValueError):
            continue  # a malformed message: its task refuses it
    return list(held)


class WorkerBeat(threading.Thread):
    """Records in PostgreSQL, every ``interval`` seconds (sooner after a step arrives,
    at most every ``MIN_GAP``), that this worker lives and which steps it holds: their
    leases are renewed while it lives, and a peer's sweep sends them again soon after it
    stops (see ``WorkerStore``). One statement per beat, whatever the number of steps."""

    MIN_GAP = 0.5

    def __init__(self, app: Celery, interval: float):
        super().__init__(name="ruvon-worker-beat", daemon=True)
        self.app = app
        self.interval = interval
        self.name_in_db = f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"
        self.stopped = threading.Event()
        self.woken = threading.Event()
        self.beats = 0

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
                    loop.run(persistence.beat(self.name_in_db, held_steps(), lease))
                    self.beats += 1
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
            try:
                loop.run(persistence.close(), timeout=5)
            finally:
                loop.stop()


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
        self.runs = 0

    def action(self, coordinator: Coordinator) -> Coroutine[Any, Any, int]:
        return coordinator.sweep()

    def run(self) -> None:
        loop = LoopThread(name=f"{self.name}-loop")
        persistence = build_store("background")
        coordinator = build_coordinator(persistence, app=self.app)
        try:
            while not self.stopped.wait(self.interval * random.uniform(0.8, 1.2)):
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
