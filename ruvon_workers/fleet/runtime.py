"""Per-process state of a worker: its event loop, its pool, its coordinator.

Created lazily on first use in each process (so prefork children open their own pool
after the fork) and closed at process shutdown.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from celery import Celery

from ..definitions import Registry
from ..engine.values import run_blocking_functions_in_threads
from ..utils.loop import InlineLoop, LoopThread
from .factory import build_coordinator, build_store, store_role
from .settings import FleetSettings

T = TypeVar("T")

_lock = threading.Lock()
_runtimes: dict[tuple[int, int], ProcessRuntime] = {}


class ProcessRuntime:
    def __init__(self, app: Celery, registry: Registry, settings: FleetSettings):
        # Tasks in prefork/solo pools run on the process's main thread one at a time and
        # can drive the loop themselves; thread pools share a loop running in a thread.
        inline = threading.current_thread() is threading.main_thread()
        self.loop: InlineLoop | LoopThread = InlineLoop() if inline else LoopThread()
        if not inline:  # one loop for every task: blocking steps must not hold it
            run_blocking_functions_in_threads()
        # One task at a time per prefork child: a small pool is enough, and queries need
        # not yield to other coroutines (there are none), so they use the blocking driver
        # (the "step" role of fleet.factory; a thread pool's store is "threads").
        self.persistence = build_store(store_role(inline=inline))
        self.loop.run(self.persistence.initialize())
        self.coordinator = build_coordinator(self.persistence, app=app, registry=registry,
                                             settings=settings)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(coro)

    def can_run_here(self) -> bool:
        """Whether the calling thread may :meth:`run` a coroutine now: any thread can use a
        loop thread; an inline loop only the main thread that drives it, between tasks."""
        if isinstance(self.loop, LoopThread):
            return True
        return (threading.current_thread() is threading.main_thread()
                and not self.loop.loop.is_running())

    def close(self) -> None:
        try:
            self.loop.run(self.persistence.close())
        finally:
            self.loop.stop()


def runtime_for(app: Celery) -> ProcessRuntime:
    key = (os.getpid(), id(app))
    runtime = _runtimes.get(key)
    if runtime is not None:
        return runtime
    with _lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = ProcessRuntime(app, app.ruvon_registry, app.ruvon_settings)
            _runtimes[key] = runtime
            atexit.register(_close, key)
    return runtime


def process_runtimes() -> list[ProcessRuntime]:
    """The runtimes this process created (its pools' statistics feed the metrics)."""
    pid = os.getpid()
    return [runtime for (owner, _), runtime in list(_runtimes.items()) if owner == pid]


def _close(key: tuple[int, int]) -> None:
    runtime = _runtimes.pop(key, None)
    if runtime is not None and key[0] == os.getpid():
        try:
            runtime.close()
        except Exception:
            pass
