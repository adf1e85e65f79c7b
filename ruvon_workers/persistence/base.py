"""What a store must do, by concern.

A store implements all of :class:`PersistenceProvider`, which is the sum of five small
protocols: :class:`WorkflowStore` (workflow rows, their history and the recovery sweep's
leases), :class:`FanoutStore` (PARALLEL branches), :class:`ScheduleStore` (CRON
schedules), :class:`DeadLetterStore` (refused messages) and :class:`StatsStore` (counts
and step durations). Code that needs only one concern can ask for that one.
``tests/contract`` pins down the rules every store meets.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..engine.records import Branch, HistoryEntry, RecordUpdate, Status, WorkflowRecord
from ..errors import InvalidStateError
from ..utils.serialization import dumps_bytes
from .rows import DeadLetter, Schedule, ScheduleSpec, StepStats


@dataclass(frozen=True)
class DueStep:
    """A step the recovery sweep must (re)dispatch."""

    workflow_id: str
    workflow_type: str
    step: str
    version: int
    branch: int | None = None  # a PARALLEL branch of the step, when set


def same_workflow(new: WorkflowRecord, existing: WorkflowRecord) -> WorkflowRecord:
    """``existing`` when it is the workflow ``new`` asked for again (its type and
    idempotency key, or its id with the same type and key: a start sent twice); a
    different workflow holding ``new``'s id is refused."""
    if (new.idempotency_key is not None and existing.workflow_type == new.workflow_type
            and existing.idempotency_key == new.idempotency_key):
        return existing
    if (existing.id == new.id and existing.workflow_type == new.workflow_type
            and existing.idempotency_key == new.idempotency_key):
        return existing
    raise InvalidStateError(f"workflow_id {new.id}",
                            detail=f"already taken by another {existing.workflow_type} "
                                   "workflow; leave workflow_id out or choose a new one")


#: The longest reason (and stand-in for a payload that is not JSON) a dead letter keeps.
DEAD_LETTER_TEXT_MAX = 2000
#: The most a dead letter's payload takes, in bytes of its JSON encoding: a bigger one is
#: kept as an excerpt of its JSON text with its size (see :func:`dead_letter_values`).
DEAD_LETTER_PAYLOAD_MAX = 64 * 1024
_NUL = "\x00"
_NUL_STAND_IN = "\ufffd"


def dead_letter_values(task: str | None, workflow_id: str | None, reason: str,
                       payload: Any) -> tuple[str | None, str | None, str, Any]:
    """What a store records for a dead letter, so that recording one cannot fail on what
    the refused message held, nor fill the table: every NUL character (PostgreSQL stores
    none) becomes U+FFFD, in the payload's keys and strings too; the reason is cut to
    :data:`DEAD_LETTER_TEXT_MAX` characters; a payload the JSON codec cannot encode is
    kept as its ``repr``, cut likewise; one whose JSON encoding is bigger than
    :data:`DEAD_LETTER_PAYLOAD_MAX` bytes becomes ``{"truncated": true, "size": <its
    size in bytes>, "excerpt": <the start of its JSON text>}``, itself no bigger."""
    try:
        encoded = dumps_bytes(payload)
    except Exception:
        kept: Any = _repr(payload)[:DEAD_LETTER_TEXT_MAX]
    else:
        kept = payload if len(encoded) <= DEAD_LETTER_PAYLOAD_MAX else _excerpt(encoded)
    return (_without_nul(task), _without_nul(workflow_id),
            _without_nul(str(reason))[:DEAD_LETTER_TEXT_MAX], _without_nul(kept))


def _excerpt(encoded: bytes) -> dict[str, Any]:
    """A payload too big to keep: the start of its JSON text, cut so that the whole
    stays within :data:`DEAD_LETTER_PAYLOAD_MAX` bytes once encoded (escapes grow it)."""
    capped: dict[str, Any] = {"truncated": True, "size": len(encoded), "excerpt": ""}
    budget = DEAD_LETTER_PAYLOAD_MAX - len(dumps_bytes(capped))
    text = encoded[:budget].decode("utf-8", "ignore")
    while (size := len(dumps_bytes(_without_nul(text))) - 2) > budget:
        # Shorter in proportion (each character takes a byte or more once encoded).
        text = text[:max(0, len(text) * budget // size - 1)]
    capped["excerpt"] = text
    return capped


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(_NUL, _NUL_STAND_IN)
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def percentile_cont(ordered: list[float], fraction: float) -> float | None:
    """PostgreSQL's ``percentile_cont`` over ``ordered`` (sorted ascending): interpolated
    between the two nearest values; ``None`` when there are none."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def step_stats(completed: Iterable[tuple[str | None, float | None]]) -> list[StepStats]:
    """``StepStats`` per step from ``(step, duration_ms)`` of its COMPLETED rows, in the
    order the steps first completed: every row counts, the figures are over the rows with
    a duration (as PostgreSQL's aggregates)."""
    by_step: dict[str | None, list[float | None]] = {}
    for step, duration_ms in completed:
        by_step.setdefault(step, []).append(duration_ms)
    stats = []
    for step, durations in by_step.items():
        known = sorted(d for d in durations if d is not None)
        stats.append(StepStats(step, len(durations),
                               statistics.fmean(known) if known else None,
                               percentile_cont(known, 0.5), percentile_cont(known, 0.95),
                               known[-1] if known else None))
    return stats


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


class WorkflowStore(Protocol):
    """Workflow rows (every write a compare-and-set on ``version``), their history, and
    the leases the recovery sweep claims."""

    async def initialize(self) -> None: ...

    async def close(self) -> None: ...

    def pinned(self) -> AbstractContextManager[None]:
        """Run the queries made inside the block on one connection (one step's queries:
        one pool checkout, not several). A no-op for stores without connections."""
        ...

    async def create_workflow(self, record: WorkflowRecord,
                              due_in: float | None = None) -> tuple[WorkflowRecord, bool]:
        """Insert ``record``; with its idempotency key taken (or its id, by the same
        request), return the existing one and ``False``; see :func:`same_workflow`."""
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

    async def claim_due(self, *, lease_seconds: float, limit: int = 100,
                        workflow_types: list[str] | None = None) -> list[DueStep]:
        """Take due steps (and branches) and push their lease on; with ``workflow_types``,
        only workflows of those types."""
        ...

    async def extend_due(self, item: DueStep, lease_seconds: float) -> None:
        """Push a claimed step's (or branch's) lease to ``lease_seconds`` from now."""
        ...


class FanoutStore(Protocol):
    """PARALLEL fan-outs: a counter per fan-out and one row per branch."""

    async def create_fanout(self, workflow_id: str, version: int, step: str,
                            branches: list[Branch], lease_seconds: float) -> None:
        """Store the planned branches (their ``idx``, ``name`` and ``item``), all PENDING,
        and the counter; a second call for the same fan-out changes nothing."""
        ...

    async def get_branch(self, workflow_id: str, version: int, idx: int) -> Branch | None:
        """Branch ``idx`` (``idx``, ``name``, ``item``, ``status``, ``attempt``)."""
        ...

    async def load_branch(self, workflow_id: str, version: int, idx: int
                          ) -> tuple[WorkflowRecord | None, Branch | None]:
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

    async def list_branches(self, workflow_id: str, version: int) -> list[Branch]:
        """Every branch of the fan-out, by ``idx``, with its outcome (not its ``item``)."""
        ...

    async def close_fanout(self, workflow_id: str, version: int) -> None: ...


class ScheduleStore(Protocol):
    """CRON_SCHEDULE schedules."""

    async def upsert_schedule(self, schedule: ScheduleSpec | Mapping[str, Any]) -> bool:
        """Store ``schedule`` by name (a mapping is read as :meth:`ScheduleSpec.of`);
        whether it is new (``False``: a schedule of that name was updated)."""
        ...

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        ...

    async def delete_schedule(self, name: str) -> bool: ...

    async def delete_schedules_created_by(self, workflow_id: str) -> list[str]:
        """Delete the schedules ``workflow_id`` created (a cancelled run's); their names."""
        ...

    async def due_schedules(self, limit: int = 50,
                            workflow_types: list[str] | None = None) -> list[Schedule]:
        """Schedules whose ``next_run_at`` has come, the earliest first; with
        ``workflow_types``, only those starting one of these types."""
        ...

    async def advance_schedule(self, name: str, tick: Any, next_run_at: Any,
                               workflow_id: str | None, fired: Any) -> bool:
        """Move a schedule from ``tick`` (compare-and-set) to ``next_run_at``, recording
        the tick that ``fired`` (the latest due; ``tick`` unless ticks were missed)."""
        ...


class DeadLetterStore(Protocol):
    """Messages the fleet refused."""

    async def record_dead_letter(self, task: str | None, workflow_id: str | None, reason: str,
                                 payload: Any) -> None:
        """Record a refused message as :func:`dead_letter_values` cleans it."""
        ...

    async def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        """The latest ``limit`` dead letters, newest first."""
        ...


class DefinitionStore(Protocol):
    """The definition each run started with (``runtime.definition`` names it), stored
    once per fingerprint."""

    async def save_definition(self, fingerprint: str, workflow_type: str,
                              workflow_version: str, snapshot: dict[str, Any]) -> None:
        """Store a snapshot; one already stored under ``fingerprint`` is kept."""
        ...

    async def load_definition(self, fingerprint: str) -> dict[str, Any] | None: ...


def ended_statuses() -> list[str]:
    """The statuses of a run that has ended for good (what retention may remove)."""
    return sorted(s.value for s in Status if s.is_terminal)


#: What a worker holds: ``(workflow id, version, branch or None)``.
Held = tuple[str, int, int | None]

#: A producer's message a worker holds (running, reserved or waiting on a countdown), as
#: it would be sent again: ``{"task", "id", "kwargs", "queue", "eta"}``.
HeldMessage = dict[str, Any]


@dataclass(frozen=True)
class Reaped:
    """What a reap found: workers that stopped beating, how many steps and branches
    became due, and the producers' messages those workers held (to be sent again, after
    which each worker is forgotten: ``forget_worker``)."""

    workers: list[str] = field(default_factory=list)
    made_due: int = 0
    messages: list[HeldMessage] = field(default_factory=list)


class WorkerStore(Protocol):
    """Workers' liveness, so that the leases of what they hold follow them, and the
    broker's epoch, so that a broker that lost its messages is noticed."""

    async def beat(self, name: str, holding: list[Held], lease_seconds: float,
                   messages: Sequence[HeldMessage] = ()) -> None:
        """``name`` is alive; the leases of the steps and branches it holds (still as it
        took them) are at least ``lease_seconds`` away; ``messages`` are the producers'
        messages it holds (the last beat's list is replaced)."""
        ...

    async def reap_workers(self, silent_for: float, window: float,
                           retake: float = 30.0) -> Reaped:
        """Workers silent for ``silent_for`` seconds are gone: what they held becomes due
        now (a retry not before its time), as do ACTIVE steps dispatched from ``window``
        seconds before a gone worker's last beat until its death. A worker is reaped
        once, or again ``retake`` seconds later if it is still not forgotten (its
        reaper died before sending its messages again)."""
        ...

    async def forget_worker(self, name: str) -> None: ...

    async def due_unaccounted(self, queued: list[Held]) -> int:
        """Make due now (a retry at its time) every ACTIVE step and PENDING branch whose
        message is nowhere: neither held by a live worker nor in ``queued`` (the step
        messages waiting in the broker). After a worker died, this covers what it took
        after its last beat. Returns how many rows became due."""
        ...

    async def note_broker_epoch(self, broker: str, epoch: str) -> tuple[bool, int]:
        """Record the epoch marker ``broker`` holds. When it differs from the one last
        recorded, the broker lost its messages: every step, branch and wake-up that may
        have been queued there (all that no live worker holds) becomes due now (a retry
        not before its time). ``(changed, rows made due)``; the first epoch recorded for
        a broker is no change."""
        ...


class RetentionStore(Protocol):
    """Removing what is old: ended workflows (with their history, fan-outs and branches)
    and dead letters, in batches that never hold locks for long."""

    async def purge(self, before: dt.datetime, *, batch: int = 1000,
                    dry_run: bool = False) -> tuple[int, int]:
        """``(workflows, dead letters)`` removed (or, with ``dry_run``, that would be):
        workflows that ended and last changed before ``before``, dead letters recorded
        before it."""
        ...


class StatsStore(Protocol):
    """Read-only summaries for metrics and the CLI."""

    async def count_by_status(self) -> dict[str, int]: ...

    async def step_durations(self, workflow_type: str) -> list[StepStats]:
        """Per step of ``workflow_type``: its COMPLETED history rows, in the order the
        steps first completed."""
        ...


class PersistenceProvider(WorkflowStore, FanoutStore, ScheduleStore, DeadLetterStore,
                          DefinitionStore, WorkerStore, RetentionStore, StatsStore,
                          Protocol):
    """Everything a store does: what the engine, the fleet and the clients are given."""
