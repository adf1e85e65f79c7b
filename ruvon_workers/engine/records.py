"""What is stored about a workflow, and the changes a step makes to it."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from .runtime import Runtime


class Status(enum.StrEnum):
    ACTIVE = "ACTIVE"
    PENDING_ASYNC = "PENDING_ASYNC"
    PENDING_SUB_WORKFLOW = "PENDING_SUB_WORKFLOW"
    #: A parent whose sub-workflow waits for input (Ruvon); PENDING_SUB_WORKFLOW again
    #: once the child is resumed.
    WAITING_CHILD_HUMAN_INPUT = "WAITING_CHILD_HUMAN_INPUT"
    WAITING_HUMAN = "WAITING_HUMAN"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    FAILED_ROLLED_BACK = "FAILED_ROLLED_BACK"
    FAILED_CHILD_WORKFLOW = "FAILED_CHILD_WORKFLOW"
    CANCELLED = "CANCELLED"
    #: Marked by ``ruvon scan-zombies --fix``: stuck mid-step with no worker to take it.
    FAILED_WORKER_CRASH = "FAILED_WORKER_CRASH"

    @classmethod
    def _missing_(cls, value: object) -> Status | None:
        # Names the Ruvon docs give a waiting workflow, and the name earlier versions
        # stored: accepted as input (filters, rows written before migration 0005).
        if isinstance(value, str) and value.upper() in WAITING_ALIASES:
            return cls.WAITING_HUMAN
        return None

    @classmethod
    def parse(cls, name: str) -> Status:
        """A status given by a person (any case, or a waiting alias); ValueError names the
        statuses there are."""
        try:
            return cls(name.strip().upper())
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown status {name!r}; one of: {known}") from None

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


#: A parent waiting for its sub-workflow, whatever the child is doing.
WAITS_FOR_CHILD = frozenset({Status.PENDING_SUB_WORKFLOW, Status.WAITING_CHILD_HUMAN_INPUT})

#: Other names for WAITING_HUMAN: the Ruvon docs' PAUSED and WAITING_HUMAN_INPUT.
WAITING_ALIASES = frozenset({"PAUSED", "WAITING_HUMAN_INPUT"})


TERMINAL = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.FAILED_ROLLED_BACK, Status.FAILED_CHILD_WORKFLOW,
     Status.CANCELLED, Status.FAILED_WORKER_CRASH}
)


class StepOutcome(enum.StrEnum):
    """The ``status`` of a history row."""

    CREATED = "CREATED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    RETRYING = "RETRYING"
    WAITING = "WAITING"
    RESUMED = "RESUMED"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"
    CANCELLED = "CANCELLED"
    RETRIED = "RETRIED"
    ITERATED = "ITERATED"
    JUMPED = "JUMPED"


@dataclass
class HistoryEntry:
    step: str | None
    status: str
    attempt: int = 1
    duration_ms: float | None = None
    error: dict[str, Any] | None = None
    detail: dict[str, Any] | None = None
    version: int | None = None
    created_at: dt.datetime | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "status": str(self.status),
            "attempt": self.attempt,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "detail": self.detail,
        }


@dataclass
class WorkflowRecord:
    id: str
    workflow_type: str
    workflow_version: str
    status: str
    current_step: str | None
    state: dict[str, Any]
    version: int = 0
    runtime: Runtime = field(default_factory=Runtime)
    idempotency_key: str | None = None
    parent_id: str | None = None
    error: dict[str, Any] | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.runtime, Runtime):
            self.runtime = Runtime.from_dict(self.runtime)


class UpdateFields(TypedDict, total=False):
    """The fields of a :class:`RecordUpdate`, as :meth:`RecordUpdate.keep` takes them."""

    status: str
    current_step: str | None
    state: dict[str, Any]
    runtime: Runtime
    error: dict[str, Any] | None
    due_in: float | None


@dataclass
class RecordUpdate:
    """The new values of a workflow row after one transition."""

    status: str
    current_step: str | None
    state: dict[str, Any]
    runtime: Runtime
    error: dict[str, Any] | None = None
    due_in: float | None = None  # seconds until the sweep may (re)dispatch; None: not due

    def __post_init__(self) -> None:
        if not isinstance(self.runtime, Runtime):
            self.runtime = Runtime.from_dict(self.runtime)

    @property
    def terminal(self) -> bool:
        return Status(self.status).is_terminal

    @classmethod
    def keep(cls, record: WorkflowRecord, **changes: Unpack[UpdateFields]) -> RecordUpdate:
        values: UpdateFields = {
            "status": record.status,
            "current_step": record.current_step,
            "state": record.state,
            "runtime": record.runtime,
            "error": record.error,
        }
        values.update(changes)
        return cls(**values)

    def applied_to(self, record: WorkflowRecord, version: int) -> WorkflowRecord:
        record.status = self.status
        record.current_step = self.current_step
        record.state = self.state
        record.runtime = self.runtime
        record.error = self.error
        record.version = version
        return record


@dataclass
class Branch:
    """One branch of a PARALLEL step's fan-out: planned (``item`` is what it works on),
    then PENDING until it reports COMPLETED (``result``: the changes it made) or FAILED
    (``error``); ABANDONED when its workflow no longer waits for it."""

    idx: int
    name: str
    status: str = "PENDING"
    attempt: int = 0
    item: Any = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    duration_ms: float | None = None

    def plan(self) -> dict[str, Any]:
        """What the fan-out stores of a planned branch."""
        return {"idx": self.idx, "name": self.name, "item": self.item}
