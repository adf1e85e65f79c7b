"""The execution protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..engine.records import WorkflowRecord
    from ..workflow import Workflow


class ExecutionProvider(Protocol):
    #: Seconds after which the recovery sweep may dispatch a new workflow's first step;
    #: ``None`` when nothing sweeps (in-process execution).
    def initial_due_in(self) -> float | None: ...

    async def on_created(self, record: WorkflowRecord) -> None:
        """Called once a new workflow is stored."""
        ...

    async def run_next(self, workflow: Workflow,
                       user_input: dict[str, Any]) -> tuple[Any, str | None]:
        ...

    async def cancel(self, workflow: Workflow, reason: str) -> None:
        """Cancel the run for good (CANCELLED), and the sub-workflow it waits for."""
        ...
