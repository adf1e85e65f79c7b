"""One event loop per process for code that is called synchronously (Celery tasks,
the sync ``Client``): starting a loop per call costs more than the work it runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    # The policy is uvloop's when RUVON_USE_UVLOOP is on (installed on import).
    return asyncio.new_event_loop()


class LoopThread:
    """An event loop running in a daemon thread; any thread may submit coroutines."""

    def __init__(self, name: str = "ruvon-loop"):
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class InlineLoop:
    """A loop driven by the calling thread (prefork and solo pools: one task at a time)."""

    def __init__(self) -> None:
        self.loop = new_event_loop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.loop.run_until_complete(coro)

    def stop(self) -> None:
        self.loop.close()
