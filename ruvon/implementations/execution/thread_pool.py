"""``ThreadPoolExecutorProvider``: Ruvon's thread-pool executor.

Steps run in the caller's process as with the sync executor; PARALLEL branches run on
threads (blocking functions) or on the event loop (``async def`` ones) either way.
"""

from __future__ import annotations

from typing import Any

from ruvon_workers.execution.sync import SyncExecutionProvider


class ThreadPoolExecutorProvider(SyncExecutionProvider):
    """Ruvon's thread-pool executor: PARALLEL branches on threads; a sub-workflow is
    driven by the program, as with ``SyncExecutor``."""

    runs_children = False

    def __init__(self, max_workers: int = 4) -> None:
        self.max_workers = max_workers

    def initialize(self, persistence_provider: Any = None,
                   workflow_engine_instance: Any = None) -> None:
        """Nothing to start: kept for Ruvon programs that call it."""

    def close(self) -> None:
        """Nothing to stop."""


#: The name Ruvon's docs use.
ThreadPoolExecutionProvider = ThreadPoolExecutorProvider

__all__ = ["ThreadPoolExecutionProvider", "ThreadPoolExecutorProvider"]
