"""An in-memory store with the same compare-and-set rules as PostgreSQL.

For unit tests and prototyping: nothing survives the process.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import statistics
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..engine.records import HistoryEntry, RecordUpdate, Status, StepOutcome, WorkflowRecord
from ..errors import StaleStateError
from .base import DueStep, dead_letter_values, same_workflow
from .rows import DeadLetter, Schedule, ScheduleSpec, StepStats

_DUE_STATUSES = frozenset({Status.ACTIVE, Status.PENDING_ASYNC, Status.PENDING_SUB_WORKFLOW})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MemoryPersistenceProvider:
    def __init__(self) -> None:
        self._rows: dict[str, WorkflowRecord] = {}
        self._due: dict[str, dt.datetime | None] = {}
        self._history: dict[str, list[HistoryEntry]] = {}
        self._keys: dict[str, str] = {}
        self._dead: list[DeadLetter] = []
        self._fanouts: dict[tuple[str, int], dict[str, Any]] = {}
        self._schedules: dict[str, Schedule] = {}

    async def initialize(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Nothing to pin: there are no connections."""
        yield

    @staticmethod
    def _due_at(due_in: float | None) -> dt.datetime | None:
        return None if due_in is None else _now() + dt.timedelta(seconds=due_in)

    async def create_workflow(self, record: WorkflowRecord,
                              due_in: float | None = None) -> tuple[WorkflowRecord, bool]:
        key = record.idempotency_key
        if key is not None and key in self._keys:
            return copy.deepcopy(self._rows[self._keys[key]]), False
        if record.id in self._rows:
            return copy.deepcopy(same_workflow(record, self._rows[record.id])), False
        stored = copy.deepcopy(record)
        stored.version = 0
        stored.created_at = stored.updated_at = _now()
        self._rows[stored.id] = stored
        self._due[stored.id] = self._due_at(due_in)
        self._history[stored.id] = [HistoryEntry(stored.current_step, StepOutcome.CREATED, 1,
                                                 version=0, created_at=stored.created_at)]
        if key is not None:
            self._keys[key] = stored.id
        return copy.deepcopy(stored), True

    async def load_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        row = self._rows.get(str(workflow_id))
        return copy.deepcopy(row) if row else None

    async def apply(self, workflow_id: str, expected_version: int, update: RecordUpdate,
                    history: list[HistoryEntry]) -> int:
        row = self._rows.get(str(workflow_id))
        if row is None or row.version != expected_version:
            raise StaleStateError(workflow_id, expected_version, row.version if row else None)
        now = _now()
        update = copy.deepcopy(update)
        update.applied_to(row, row.version + 1)
        row.updated_at = now
        row.completed_at = now if update.terminal else None
        self._due[row.id] = self._due_at(update.due_in)
        for entry in history:
            stored = copy.deepcopy(entry)
            stored.version = row.version
            stored.created_at = now
            self._history[row.id].append(stored)
        return row.version

    async def history(self, workflow_id: str) -> list[HistoryEntry]:
        return copy.deepcopy(self._history.get(str(workflow_id), []))

    async def list_workflows(self, *, status: str | None = None,
                             workflow_type: str | None = None,
                             limit: int = 50) -> list[WorkflowRecord]:
        rows = [r for r in self._rows.values()
                if (status is None or r.status == status)
                and (workflow_type is None or r.workflow_type == workflow_type)]
        rows.sort(key=lambda r: r.updated_at or _now(), reverse=True)
        return copy.deepcopy(rows[:limit])

    async def claim_due(self, *, lease_seconds: float, limit: int = 100,
                        workflow_types: list[str] | None = None) -> list[DueStep]:
        now = _now()
        due = []
        for wid, when in self._due.items():
            row = self._rows[wid]
            if workflow_types is not None and row.workflow_type not in workflow_types:
                continue
            if row.status in _DUE_STATUSES and when is not None and when <= now:
                self._due[wid] = self._due_at(lease_seconds)
                due.append(DueStep(wid, row.workflow_type, row.current_step or "", row.version))
                if len(due) >= limit:
                    break
        return due

    async def extend_due(self, item: DueStep, lease_seconds: float) -> None:
        row = self._rows.get(item.workflow_id)
        if item.branch is None and row and row.version == item.version \
                and row.status == Status.ACTIVE:
            self._due[item.workflow_id] = self._due_at(lease_seconds)

    async def record_dead_letter(self, task: str | None, workflow_id: str | None, reason: str,
                                 payload: Any) -> None:
        task, workflow_id, reason, payload = dead_letter_values(task, workflow_id, reason,
                                                                payload)
        self._dead.append(DeadLetter(len(self._dead) + 1, task, workflow_id, reason,
                                     copy.deepcopy(payload), _now()))

    async def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        return copy.deepcopy(list(reversed(self._dead))[:limit])

    async def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self._rows.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    async def step_durations(self, workflow_type: str) -> list[StepStats]:
        by_step: dict[str, list[float]] = {}
        for wid, entries in self._history.items():
            if self._rows[wid].workflow_type != workflow_type:
                continue
            for e in entries:
                if e.status == StepOutcome.COMPLETED and e.step and e.duration_ms is not None:
                    by_step.setdefault(e.step, []).append(e.duration_ms)
        return [
            StepStats(step, len(v), statistics.fmean(v), statistics.median(v),
                      sorted(v)[int(0.95 * (len(v) - 1))], max(v))
            for step, v in by_step.items()
        ]

    # -- PARALLEL fan-outs ----------------------------------------------------------------

    async def create_fanout(self, workflow_id: str, version: int, step: str,
                            branches: list[dict[str, Any]], lease_seconds: float) -> None:
        key = (str(workflow_id), version)
        if key in self._fanouts:
            return
        self._fanouts[key] = {"step": step, "remaining": len(branches), "branches": [
            {"idx": b["idx"], "name": b["name"], "item": copy.deepcopy(b.get("item")),
             "status": "PENDING", "attempt": 0, "result": None, "error": None,
             "duration_ms": None} for b in branches]}

    def _branch(self, workflow_id: str, version: int, idx: int) -> dict[str, Any] | None:
        fanout = self._fanouts.get((str(workflow_id), version))
        if fanout is None or not 0 <= idx < len(fanout["branches"]):
            return None
        branch: dict[str, Any] = fanout["branches"][idx]
        return branch

    async def get_branch(self, workflow_id: str, version: int,
                         idx: int) -> dict[str, Any] | None:
        branch = self._branch(workflow_id, version, idx)
        return copy.deepcopy(branch) if branch else None

    async def load_branch(self, workflow_id: str, version: int, idx: int
                          ) -> tuple[WorkflowRecord | None, dict[str, Any] | None]:
        return (await self.load_workflow(workflow_id),
                await self.get_branch(workflow_id, version, idx))

    async def finish_branch(self, workflow_id: str, version: int, idx: int, *, status: str,
                            result: Any, error: dict[str, Any] | None, attempt: int,
                            duration_ms: float | None) -> int | None:
        branch = self._branch(workflow_id, version, idx)
        if branch is None or branch["status"] != "PENDING":
            return None
        branch.update(status=status, result=copy.deepcopy(result), error=error,
                      attempt=attempt, duration_ms=duration_ms)
        fanout = self._fanouts[(str(workflow_id), version)]
        fanout["remaining"] -= 1
        return int(fanout["remaining"])

    async def retry_branch(self, workflow_id: str, version: int, idx: int, *, attempt: int,
                           error: dict[str, Any], delay: float) -> bool:
        branch = self._branch(workflow_id, version, idx)
        if branch is None or branch["status"] != "PENDING" or branch["attempt"] >= attempt:
            return False
        branch.update(attempt=attempt, error=error)
        return True

    async def lose_branch(self, workflow_id: str, version: int, idx: int, *,
                          error: dict[str, Any], lease_seconds: float) -> tuple[int, int] | None:
        branch = self._branch(workflow_id, version, idx)
        if branch is None or branch["status"] != "PENDING":
            return None
        branch.update(lost=branch.get("lost", 0) + 1, error=error)
        return int(branch["lost"]), int(branch["attempt"])

    async def list_branches(self, workflow_id: str, version: int) -> list[dict[str, Any]]:
        fanout = self._fanouts.get((str(workflow_id), version))
        if fanout is None:
            return []
        return [{**copy.deepcopy(b), "remaining": fanout["remaining"]}
                for b in fanout["branches"]]

    async def close_fanout(self, workflow_id: str, version: int) -> None:
        for branch in self._fanouts.get((str(workflow_id), version), {}).get("branches", []):
            if branch["status"] == "PENDING":
                branch["status"] = "ABANDONED"

    # -- CRON_SCHEDULE schedules ----------------------------------------------------------

    async def upsert_schedule(self, schedule: ScheduleSpec | Mapping[str, Any]) -> None:
        spec = ScheduleSpec.of(schedule)
        existing = self._schedules.get(spec.name)
        if existing is None:
            self._schedules[spec.name] = Schedule(
                spec.name, spec.workflow_type, spec.cron_expression,
                copy.deepcopy(spec.initial_data), spec.next_run_at, last_run_at=None,
                last_workflow_id=None, runs=0, created_by=spec.created_by, created_at=_now())
            return
        self._schedules[spec.name] = dataclasses.replace(
            existing, workflow_type=spec.workflow_type, cron_expression=spec.cron_expression,
            initial_data=copy.deepcopy(spec.initial_data),
            next_run_at=(existing.next_run_at
                         if existing.cron_expression == spec.cron_expression
                         else spec.next_run_at))

    async def list_schedules(self) -> list[Schedule]:
        return copy.deepcopy([self._schedules[k] for k in sorted(self._schedules)])

    async def delete_schedule(self, name: str) -> bool:
        return self._schedules.pop(name, None) is not None

    async def due_schedules(self, limit: int = 50,
                            workflow_types: list[str] | None = None) -> list[Schedule]:
        now = _now()
        due = sorted((s for s in self._schedules.values() if s.next_run_at <= now
                      and (workflow_types is None or s.workflow_type in workflow_types)),
                     key=lambda s: s.next_run_at)
        return copy.deepcopy(due[:limit])

    async def advance_schedule(self, name: str, tick: Any, next_run_at: Any,
                               workflow_id: str | None, fired: Any) -> bool:
        row = self._schedules.get(name)
        if row is None or row.next_run_at != tick:
            return False
        self._schedules[name] = dataclasses.replace(
            row, next_run_at=next_run_at, last_run_at=fired, last_workflow_id=workflow_id,
            runs=row.runs + 1)
        return True

if TYPE_CHECKING:
    from .base import PersistenceProvider

    _conforms: PersistenceProvider = MemoryPersistenceProvider()
