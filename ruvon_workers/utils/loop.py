"""One event loop per process for code that is called synchronously (Celery tasks,
the sync ``Client``): starting a loop per call costs more than the work it runs.

uvloop (``RUVON_USE_UVLOOP``, on by default) runs these loops. Importing the package
leaves the process's event loop policy alone: the ``ruvon-workers`` command and the
fleet's workers call :func:`install_uvloop` when they start, and an in-process program
chooses its own event loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .serialization import _env_flag

T = TypeVar("T")


def _uvloop() -> Any:
    """The uvloop module when RUVON_USE_UVLOOP is on and it is installed, else None."""
    if not _env_flag("RUVON_USE_UVLOOP") or os.name == "nt":
        return None
    try:
        import uvloop
    except ImportError:  # stdlib asyncio then
        return None
    return uvloop


def install_uvloop() -> bool:
    """Make uvloop the event loop policy of this process when ``RUVON_USE_UVLOOP`` is on
    (the default) and uvloop is installed; return whether it is. The stdlib loop stays
    otherwise. Called by the ``ruvon-workers`` command and by workers as they start."""
    uvloop = _uvloop()
    if uvloop is None:
        return False
    if not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy):
        uvloop.install()
    return True


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop for this package's own use: uvloop's when ``RUVON_USE_UVLOOP`` is on,
    whatever the process's policy."""
    uvloop = _uvloop()
    loop: asyncio.AbstractEventLoop = (uvloop.new_event_loop() if uvloop is not None
                                       else asyncio.new_event_loop())
    return loop


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
