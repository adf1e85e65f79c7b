"""The persistence protocol every store implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..engine.records import HistoryEntry, RecordUpdate, WorkflowRecord


@dataclass(frozen=True)
class DueStep:
    """A step the recovery sweep must (re)dispatch."""

    workflow_id: str
    workflow_type: str
    step: str
    version: int


class PersistenceProvider(Protocol):
    async def initialize(self) -> None: ...

    async def close(self) -> None: ...

    async def create_workflow(self, record: WorkflowRecord,
                              due_in: float | None = None) -> tuple[WorkflowRecord, bool]:
        """Insert ``record``; with its idempotency key taken, return the existing one
        and ``False``."""
        ...

    async def load_workflow(self, workflow_id: str) -> WorkflowRecord | None: ...

    async def apply(self, workflow_id: str, expected_version: int, update: RecordUpdate,
                    history: list[HistoryEntry]) -> int:
        """Compare-and-set write; return the new version or raise ``StaleStateError``."""
        ...

    async def history(self, workflow_id: str) -> list[HistoryEntry]: ...

    async def list_workflows(self, *, status: str | None = None,
                             workflow_type: str | None = None,
                             limit: int = 50) -> list[WorkflowRecord]: ...

    async def claim_due(self, *, lease_seconds: float, limit: int = 100) -> list[DueStep]: ...

    async def count_by_status(self) -> dict[str, int]: ...

    async def record_dead_letter(self, task: str | None, workflow_id: str | None, reason: str,
                                 payload: Any) -> None: ...

    async def dead_letters(self, limit: int = 50) -> list[dict[str, Any]]: ...

    async def step_durations(self, workflow_type: str) -> list[dict[str, Any]]: ...
