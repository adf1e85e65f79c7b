"""``SyncExecutor``: run steps in the caller's process, one ``next_step`` at a time."""

from __future__ import annotations

from typing import Any

from ruvon_workers.execution.sync import SyncExecutionProvider


class SyncExecutor(SyncExecutionProvider):
    """Ruvon's in-process executor. PARALLEL branches run at once (``async def`` ones
    on the event loop, others in threads) without an ``initialize`` call. As on Ruvon, a
    sub-workflow is not run by its parent's ``next_step``: the program drives the child
    (``WorkflowEngine.get_workflow(parent.blocked_on_child_id)``), and the parent goes on
    once the child ends."""

    runs_children = False

    def __init__(self, workflow_builder: Any = None) -> None:
        self.workflow_builder = workflow_builder

    async def initialize(self, engine: Any = None) -> None:
        """Nothing to start: kept for Ruvon programs that call it."""

    async def close(self) -> None:
        """Nothing to stop."""


__all__ = ["SyncExecutionProvider", "SyncExecutor"]
