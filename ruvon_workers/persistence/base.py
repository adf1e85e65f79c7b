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
    branch: int | None = None  # a PARALLEL branch of the step, when set


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

    async def extend_due(self, item: DueStep, lease_seconds: float) -> None:
        """Push a claimed step's (or branch's) lease to ``lease_seconds`` from now."""
        ...

    async def count_by_status(self) -> dict[str, int]: ...

    async def record_dead_letter(self, task: str | None, workflow_id: str | None, reason: str,
                                 payload: Any) -> None: ...

    async def dead_letters(self, limit: int = 50) -> list[dict[str, Any]]: ...

    async def step_durations(self, workflow_type: str) -> list[dict[str, Any]]: ...

    # PARALLEL fan-outs: a counter per fan-out and one row per branch.
    async def create_fanout(self, workflow_id: str, version: int, step: str,
                            branches: list[dict[str, Any]], lease_seconds: float) -> None: ...

    async def get_branch(self, workflow_id: str, version: int,
                         idx: int) -> dict[str, Any] | None: ...

    async def load_branch(self, workflow_id: str, version: int, idx: int
                          ) -> tuple[WorkflowRecord | None, dict[str, Any] | None]:
        """The workflow and its branch ``idx`` of the fan-out at ``version``, in one read."""
        ...

    async def finish_branch(self, workflow_id: str, version: int, idx: int, *, status: str,
                            result: Any, error: dict[str, Any] | None, attempt: int,
                            duration_ms: float | None) -> int | None:
        """Record a branch's outcome; return the branches still running, or ``None`` when
        this branch had already finished (nothing changed)."""
        ...

    async def retry_branch(self, workflow_id: str, version: int, idx: int, *, attempt: int,
                           error: dict[str, Any], delay: float) -> bool: ...

    async def lose_branch(self, workflow_id: str, version: int, idx: int, *,
                          error: dict[str, Any], lease_seconds: float) -> tuple[int, int] | None:
        """Count a lost pool process on a pending branch: ``(lost, attempt)``, or ``None``
        when the branch already finished."""
        ...

    async def list_branches(self, workflow_id: str, version: int) -> list[dict[str, Any]]: ...

    async def close_fanout(self, workflow_id: str, version: int) -> None: ...

    # CRON_SCHEDULE schedules.
    async def upsert_schedule(self, schedule: dict[str, Any]) -> None: ...

    async def list_schedules(self) -> list[dict[str, Any]]: ...

    async def delete_schedule(self, name: str) -> bool: ...

    async def due_schedules(self, limit: int = 50) -> list[dict[str, Any]]: ...

    async def advance_schedule(self, name: str, tick: Any, next_run_at: Any,
                               workflow_id: str | None) -> bool: ...
