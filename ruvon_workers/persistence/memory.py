"""An in-memory store with the same rules as PostgreSQL (``tests/contract`` checks both).

For unit tests and prototyping: nothing survives the process.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..engine.records import Branch, HistoryEntry, RecordUpdate, Status, StepOutcome, WorkflowRecord
from ..errors import StaleStateError
from .base import (
    DueStep,
    Held,
    HeldMessage,
    Reaped,
    dead_letter_values,
    ended_statuses,
    same_workflow,
    step_stats,
)
from .rows import DeadLetter, Schedule, ScheduleSpec, StepStats

_DUE_STATUSES = frozenset({Status.ACTIVE, Status.PENDING_ASYNC, Status.PENDING_SUB_WORKFLOW,
                           Status.WAITING_CHILD_HUMAN_INPUT})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass
class _Worker:
    seen: dt.datetime
    holding: list[Held]
    messages: list[HeldMessage]
    reaped: dt.datetime | None = None


class MemoryPersistenceProvider:
    def __init__(self) -> None:
        self._rows: dict[str, WorkflowRecord] = {}
        self._definitions: dict[str, dict[str, Any]] = {}
        self._workers: dict[str, _Worker] = {}
        self._epochs: dict[str, str] = {}
        self._due: dict[str, dt.datetime | None] = {}
        self._history: dict[str, list[HistoryEntry]] = {}
        # Every history row in the order written (PostgreSQL's ``workflow_step_history.id``).
        self._log: list[tuple[str, HistoryEntry]] = []
        self._keys: dict[tuple[str, str | None], str] = {}  # (type, key) -> id
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
        key = (record.workflow_type, record.idempotency_key)
        if record.idempotency_key is not None and key in self._keys:
            return copy.deepcopy(self._rows[self._keys[key]]), False
        if record.id in self._rows:
            return copy.deepcopy(same_workflow(record, self._rows[record.id])), False
        stored = copy.deepcopy(record)
        stored.version = 0
        stored.created_at = stored.updated_at = _now()
        self._rows[stored.id] = stored
        self._due[stored.id] = self._due_at(due_in)
        created = HistoryEntry(stored.current_step, StepOutcome.CREATED, 1, version=0,
                               created_at=stored.created_at)
        self._history[stored.id] = [created]
        self._log.append((stored.id, created))
        if record.idempotency_key is not None:
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
            self._log.append((row.id, stored))
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
        due: list[DueStep] = []
        for wid, _ in sorted(((wid, when) for wid, when in self._due.items()
                              if when is not None and when <= now), key=lambda d: d[1]):
            row = self._rows[wid]
            if row.status not in _DUE_STATUSES or (
                    workflow_types is not None and row.workflow_type not in workflow_types):
                continue
            if len(due) >= limit:
                break
            self._due[wid] = self._lease_of(row, lease_seconds, now)
            due.append(DueStep(wid, row.workflow_type, row.current_step or "", row.version))
        self._abandon_stale_branches(limit, now)
        return due + self._claim_due_branches(lease_seconds, limit, workflow_types, now)

    @staticmethod
    def _lease_of(row: WorkflowRecord, lease_seconds: float, now: dt.datetime) -> dt.datetime:
        """A claimed row's new due time: the lease, or sooner a fan-out's deadline."""
        lease = now + dt.timedelta(seconds=lease_seconds)
        deadline = row.runtime.parallel["deadline"] if row.runtime.parallel else None
        if row.status != Status.PENDING_ASYNC or deadline is None:
            return lease
        return min(lease, dt.datetime.fromtimestamp(float(deadline) + 0.5, dt.UTC))

    def _pending_due_branches(self, now: dt.datetime
                              ) -> list[tuple[tuple[str, int], dict[str, Any]]]:
        found = [(key, branch) for key, fanout in self._fanouts.items()
                 for branch in fanout["branches"]
                 if branch["status"] == "PENDING" and branch["due"] is not None
                 and branch["due"] <= now]
        found.sort(key=lambda kb: kb[1]["due"])
        return found

    def _abandon_stale_branches(self, limit: int, now: dt.datetime) -> None:
        """Pending branches of a fan-out the workflow no longer waits on."""
        abandoned = 0
        for (wid, version), branch in self._pending_due_branches(now):
            if abandoned >= limit:
                return
            row = self._rows.get(wid)
            if row is None or row.status != Status.PENDING_ASYNC or row.version != version:
                branch.update(status="ABANDONED", due=None)
                abandoned += 1

    def _claim_due_branches(self, lease_seconds: float, limit: int,
                            workflow_types: list[str] | None,
                            now: dt.datetime) -> list[DueStep]:
        due: list[DueStep] = []
        for (wid, version), branch in self._pending_due_branches(now):
            row = self._rows.get(wid)
            if (row is None or row.status != Status.PENDING_ASYNC or row.version != version
                    or (workflow_types is not None
                        and row.workflow_type not in workflow_types)):
                continue
            if len(due) >= limit:
                break
            branch["due"] = now + dt.timedelta(seconds=lease_seconds)
            due.append(DueStep(wid, row.workflow_type, self._fanouts[(wid, version)]["step"],
                               version, branch=branch["idx"]))
        return due

    async def extend_due(self, item: DueStep, lease_seconds: float) -> None:
        if item.branch is not None:
            branch = self._branch(item.workflow_id, item.version, item.branch)
            if branch is not None and branch["status"] == "PENDING":
                branch["due"] = self._due_at(lease_seconds)
            return
        row = self._rows.get(item.workflow_id)
        if row and row.version == item.version and row.status == Status.ACTIVE:
            self._due[item.workflow_id] = self._due_at(lease_seconds)

    async def record_dead_letter(self, task: str | None, workflow_id: str | None, reason: str,
                                 payload: Any) -> None:
        task, workflow_id, reason, payload = dead_letter_values(task, workflow_id, reason,
                                                                payload)
        self._dead.append(DeadLetter(len(self._dead) + 1, task, workflow_id, reason,
                                     copy.deepcopy(payload), _now()))

    async def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        return copy.deepcopy(list(reversed(self._dead))[:limit])

    async def purge(self, before: dt.datetime, *, batch: int = 1000,
                    dry_run: bool = False) -> tuple[int, int]:
        ended = set(ended_statuses())
        doomed = [wid for wid, row in self._rows.items() if row.status in ended
                  and row.updated_at is not None and row.updated_at < before]
        letters = [d for d in self._dead if d.created_at is not None and d.created_at < before]
        if dry_run:
            return len(doomed), len(letters)
        for wid in doomed:
            self._forget(wid)
        self._dead = [d for d in self._dead if d not in letters]
        return len(doomed), len(letters)

    def _forget(self, wid: str) -> None:
        """Remove a workflow with its history, fan-outs and branches."""
        row = self._rows.pop(wid)
        self._due.pop(wid, None)
        self._history.pop(wid, None)
        self._log = [(w, entry) for w, entry in self._log if w != wid]
        if row.idempotency_key is not None:
            self._keys.pop((row.workflow_type, row.idempotency_key), None)
        for key in [k for k in self._fanouts if k[0] == wid]:
            del self._fanouts[key]
        for other in self._rows.values():
            if other.parent_id == wid:
                other.parent_id = None

    async def beat(self, name: str, holding: list[Held], lease_seconds: float,
                   messages: Sequence[HeldMessage] = ()) -> None:
        now = _now()
        self._workers[name] = _Worker(now, list(holding), copy.deepcopy(list(messages)))
        until = now + dt.timedelta(seconds=lease_seconds)
        for wid, version, idx in holding:
            row = self._rows.get(wid)
            # A step at a later version too: its task may be running the steps after it.
            if row is None or row.version < version or (idx is not None
                                                          and row.version != version):
                continue
            if idx is None and row.status == Status.ACTIVE:
                due = self._due.get(wid)
                self._due[wid] = until if due is None else max(due, until)
            elif idx is not None:
                branch = self._branch(wid, version, idx)
                if branch is not None and branch["status"] == "PENDING":
                    due = branch["due"]
                    branch["due"] = until if due is None else max(due, until)

    def _due_now(self, wid: str, now: dt.datetime) -> None:
        """Due now, or a retry at its time."""
        retry_at = self._rows[wid].runtime.retry_at
        later = dt.datetime.fromtimestamp(retry_at, dt.UTC) if retry_at else now
        self._due[wid] = max(now, later)

    async def reap_workers(self, silent_for: float, window: float,
                           retake: float = 30.0) -> Reaped:
        now = _now()
        gone = {name: w for name, w in self._workers.items()
                if w.seen < now - dt.timedelta(seconds=silent_for)
                and (w.reaped is None or w.reaped < now - dt.timedelta(seconds=retake))}
        if not gone:
            return Reaped()
        for worker in gone.values():
            worker.reaped = now
        held = [h for w in gone.values() for h in w.holding]
        first = min(w.seen for w in gone.values()) - dt.timedelta(seconds=window)
        last = max(w.seen for w in gone.values()) + dt.timedelta(seconds=silent_for)
        made = 0
        steps: dict[str, int] = {}
        for wid, version, idx in held:
            if idx is None:
                steps[wid] = min(version, steps.get(wid, version))
        for wid, row in self._rows.items():
            due = self._due.get(wid)
            if row.status != Status.ACTIVE or due is None or due <= now:
                continue
            recent = row.updated_at is not None and first <= row.updated_at <= last
            if (wid in steps and row.version >= steps[wid]) or recent:
                self._due_now(wid, now)
                made += 1
        for wid, version, idx in held:
            branch = self._branch(wid, version, idx) if idx is not None else None
            if branch is not None and branch["status"] == "PENDING":
                branch["due"] = now
                made += 1
        return Reaped(list(gone), made,
                      [copy.deepcopy(m) for w in gone.values() for m in w.messages])

    async def forget_worker(self, name: str) -> None:
        self._workers.pop(name, None)

    async def due_unaccounted(self, queued: list[Held]) -> int:
        return self._due_unless_accounted({Status.ACTIVE}, set(queued))

    async def note_broker_epoch(self, broker: str, epoch: str) -> tuple[bool, int]:
        prior = self._epochs.get(broker)
        self._epochs[broker] = epoch
        if prior is None or prior == epoch:
            return False, 0
        return True, self._due_unless_accounted(_DUE_STATUSES, set())

    def _due_unless_accounted(self, statuses: Set[str], queued: set[Held]) -> int:
        """Make due now every row in ``statuses`` and PENDING branch that no live worker
        holds and that is not in ``queued``; how many."""
        now = _now()
        held = {h for w in self._workers.values() if w.reaped is None for h in w.holding}
        held_steps = {(wid, version) for wid, version, idx in held if idx is None}
        made = 0
        for wid, row in self._rows.items():
            due = self._due.get(wid)
            if row.status not in statuses or due is None or due <= now \
                    or (wid, row.version, None) in queued \
                    or any(hid == wid and row.version >= v for hid, v in held_steps):
                continue
            self._due_now(wid, now)
            made += 1
        for (wid, version), fanout in self._fanouts.items():
            for branch in fanout["branches"]:
                key = (wid, version, branch["idx"])
                due = branch["due"]
                if branch["status"] == "PENDING" and due is not None and due > now \
                        and key not in held and key not in queued:
                    branch["due"] = now
                    made += 1
        return made

    async def save_definition(self, fingerprint: str, workflow_type: str,
                              workflow_version: str, snapshot: dict[str, Any]) -> None:
        self._definitions.setdefault(fingerprint, copy.deepcopy(snapshot))

    async def load_definition(self, fingerprint: str) -> dict[str, Any] | None:
        found = self._definitions.get(fingerprint)
        return None if found is None else copy.deepcopy(found)

    async def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self._rows.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    async def step_durations(self, workflow_type: str) -> list[StepStats]:
        return step_stats((entry.step, entry.duration_ms) for wid, entry in self._log
                          if entry.status == StepOutcome.COMPLETED
                          and self._rows[wid].workflow_type == workflow_type)

    # -- PARALLEL fan-outs ----------------------------------------------------------------

    async def create_fanout(self, workflow_id: str, version: int, step: str,
                            branches: list[Branch], lease_seconds: float) -> None:
        key = (str(workflow_id), version)
        if key in self._fanouts:
            return
        due = self._due_at(lease_seconds)
        self._fanouts[key] = {"step": step, "remaining": len(branches), "branches": [
            {"idx": b.idx, "name": b.name, "item": copy.deepcopy(b.item),
             "status": "PENDING", "attempt": 0, "result": None, "error": None,
             "duration_ms": None, "lost": 0, "due": due} for b in branches]}

    def _branch(self, workflow_id: str, version: int, idx: int) -> dict[str, Any] | None:
        fanout = self._fanouts.get((str(workflow_id), version))
        if fanout is None or not 0 <= idx < len(fanout["branches"]):
            return None
        branch: dict[str, Any] = fanout["branches"][idx]
        return branch

    async def get_branch(self, workflow_id: str, version: int, idx: int) -> Branch | None:
        branch = self._branch(workflow_id, version, idx)
        if branch is None:
            return None
        return Branch(idx, branch["name"], branch["status"], branch["attempt"],
                      item=copy.deepcopy(branch["item"]))

    async def load_branch(self, workflow_id: str, version: int, idx: int
                          ) -> tuple[WorkflowRecord | None, Branch | None]:
        record = await self.load_workflow(workflow_id)
        if record is None:
            return None, None
        return record, await self.get_branch(workflow_id, version, idx)

    async def finish_branch(self, workflow_id: str, version: int, idx: int, *, status: str,
                            result: Any, error: dict[str, Any] | None, attempt: int,
                            duration_ms: float | None) -> int | None:
        branch = self._branch(workflow_id, version, idx)
        if branch is None or branch["status"] != "PENDING":
            return None
        branch.update(status=status, result=copy.deepcopy(result), error=copy.deepcopy(error),
                      attempt=attempt, duration_ms=duration_ms, due=None)
        fanout = self._fanouts[(str(workflow_id), version)]
        fanout["remaining"] -= 1
        return int(fanout["remaining"])

    async def retry_branch(self, workflow_id: str, version: int, idx: int, *, attempt: int,
                           error: dict[str, Any], delay: float) -> bool:
        branch = self._branch(workflow_id, version, idx)
        if branch is None or branch["status"] != "PENDING" or branch["attempt"] >= attempt:
            return False
        branch.update(attempt=attempt, error=copy.deepcopy(error), due=self._due_at(delay))
        return True

    async def lose_branch(self, workflow_id: str, version: int, idx: int, *,
                          error: dict[str, Any], lease_seconds: float) -> tuple[int, int] | None:
        branch = self._branch(workflow_id, version, idx)
        if branch is None or branch["status"] != "PENDING":
            return None
        branch.update(lost=branch["lost"] + 1, error=copy.deepcopy(error),
                      due=self._due_at(lease_seconds))
        return int(branch["lost"]), int(branch["attempt"])

    async def list_branches(self, workflow_id: str, version: int) -> list[Branch]:
        fanout = self._fanouts.get((str(workflow_id), version))
        if fanout is None:
            return []
        return [Branch(b["idx"], b["name"], b["status"], b["attempt"],
                       result=copy.deepcopy(b["result"]), error=copy.deepcopy(b["error"]),
                       duration_ms=b["duration_ms"])
                for b in sorted(fanout["branches"], key=lambda b: b["idx"])]

    async def close_fanout(self, workflow_id: str, version: int) -> None:
        for branch in self._fanouts.get((str(workflow_id), version), {}).get("branches", []):
            if branch["status"] == "PENDING":
                branch.update(status="ABANDONED", due=None)

    # -- CRON_SCHEDULE schedules ----------------------------------------------------------

    async def upsert_schedule(self, schedule: ScheduleSpec | Mapping[str, Any]) -> bool:
        spec = ScheduleSpec.of(schedule)
        existing = self._schedules.get(spec.name)
        if existing is None:
            self._schedules[spec.name] = Schedule(
                spec.name, spec.workflow_type, spec.cron_expression,
                copy.deepcopy(spec.initial_data), spec.next_run_at, last_run_at=None,
                last_workflow_id=None, runs=0, created_by=spec.created_by, created_at=_now())
            return True
        self._schedules[spec.name] = dataclasses.replace(
            existing, workflow_type=spec.workflow_type, cron_expression=spec.cron_expression,
            initial_data=copy.deepcopy(spec.initial_data),
            next_run_at=(existing.next_run_at
                         if existing.cron_expression == spec.cron_expression
                         else spec.next_run_at))
        return False

    async def list_schedules(self) -> list[Schedule]:
        return copy.deepcopy([self._schedules[k] for k in sorted(self._schedules)])

    async def delete_schedule(self, name: str) -> bool:
        return self._schedules.pop(name, None) is not None

    async def delete_schedules_created_by(self, workflow_id: str) -> list[str]:
        names = sorted(n for n, s in self._schedules.items() if s.created_by == workflow_id)
        for name in names:
            del self._schedules[name]
        return names

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
