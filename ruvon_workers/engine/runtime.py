"""The bookkeeping of a run beside its state: attempts, waits, links, fan-out progress.

Stored in the ``runtime`` column as a JSON object whose keys are the field names below;
a field at its empty value is left out, so a row holds only what applies to it (the
sweep's SQL reads ``runtime->'parallel'->>'deadline'``). Keys this version does not know
are kept in ``extra`` and written back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, TypedDict


class Link(TypedDict):
    """Another workflow this one belongs to (``parent``) or was started by (``spawned_by``)."""

    id: str
    workflow_type: str
    step: str


class ChildInfo(TypedDict, total=False):
    """The sub-workflow a PENDING_SUB_WORKFLOW step waits for, as last seen."""

    id: str
    workflow_type: str
    status: str
    current_step: str | None


class Execution(TypedDict):
    """The version a step's first attempt ran at: its retries keep the idempotency key."""

    step: str
    version: int


class HandedFailure(TypedDict):
    """A failure recorded outside a pool process, whose compensations a pool process runs."""

    step: str
    error: dict[str, Any]


class LoopProgress(TypedDict):
    step: str
    index: int


class FanOutProgress(TypedDict):
    step: str
    total: int
    deadline: float | None


class Inserted(TypedDict):
    """Steps ``dynamic_injection`` inserted, still to run, and where to go after them."""

    steps: list[str]
    then: str | None


#: ``waiting_reason``: a step with ``automate_next: false`` ran; an operator moves it on.
HELD = "automate_next"
#: ``waiting_reason``: the step raised ``WorkflowPauseDirective``; the run waits at it and,
#: once resumed, goes on with the step after it (Ruvon).
PAUSED = "pause"
#: ``waiting_reason``: a HUMAN_IN_LOOP function raised it; resume runs the step again.
PAUSED_IN_PLACE = "pause_in_place"


@dataclass(slots=True)
class Runtime:
    #: Failed attempts so far of each step (reset when the step completes).
    attempts: dict[str, int] = field(default_factory=dict)
    #: Steps completed in order (what a saga compensates, newest first).
    completed: list[str] = field(default_factory=list)
    #: Steps whose compensation ran, once the workflow rolled back.
    compensated: list[str] | None = None
    #: The step a WAITING_HUMAN workflow waits at (or what a pause said it waits for).
    waiting_for: str | None = None
    #: Why it waits, when not for a HUMAN_IN_LOOP step it arrived at: ``HELD``, ``PAUSED``
    #: or ``PAUSED_IN_PLACE``.
    waiting_reason: str | None = None
    #: Input handed over by ``resume``, for the step's next run.
    pending_input: dict[str, Any] | None = None
    execution: Execution | None = None
    #: When (unix seconds) the retry policy runs the current step again after a failed
    #: attempt; a step message before then does not run it.
    retry_at: float | None = None
    #: Pool processes lost under each step.
    lost: dict[str, int] = field(default_factory=dict)
    compensate: HandedFailure | None = None
    child: ChildInfo | None = None
    parent: Link | None = None
    spawned_by: Link | None = None
    #: FIRE_AND_FORGET step -> the workflow it started.
    spawned: dict[str, str] = field(default_factory=dict)
    loop: LoopProgress | None = None
    parallel: FanOutProgress | None = None
    inserted: Inserted | None = None
    #: A failure runs the saga's compensations even where the definition has no
    #: ``saga_enabled`` (Ruvon's ``enable_saga_mode()`` on one run).
    saga_mode: bool = False
    #: The run's own labels, given when it was created: Ruvon's ``metadata`` and its
    #: ``owner_id``, ``org_id``, ``data_region`` and ``priority``.
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    #: The fingerprint of the definition the run started with (Ruvon's
    #: ``definition_snapshot``): it finishes on that one if the file changes.
    definition: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | Runtime | None) -> Runtime:
        if isinstance(data, Runtime):
            return data
        if not data:
            return cls()
        if _FIELD_SET.issuperset(data):  # the usual case: every key is a field
            return cls(**data)
        known = {k: v for k, v in data.items() if k in _FIELD_SET}
        extra = {k: v for k, v in data.items() if k not in _FIELD_SET}
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The stored form: every field that is set (not ``None``, not empty)."""
        out = dict(self.extra) if self.extra else {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value:
                out[name] = value
        return out

    def copy(self) -> Runtime:
        """A copy whose containers can be changed without touching this one (values that
        are only ever replaced whole, never changed in place, are shared)."""
        new: Runtime = _new(Runtime)
        new.attempts = dict(self.attempts)
        new.completed = list(self.completed)
        new.compensated = None if self.compensated is None else list(self.compensated)
        new.waiting_for = self.waiting_for
        new.waiting_reason = self.waiting_reason
        new.pending_input = self.pending_input
        new.execution = self.execution
        new.retry_at = self.retry_at
        new.lost = dict(self.lost)
        new.compensate = self.compensate
        new.child = None if self.child is None else {**self.child}
        new.parent = self.parent
        new.spawned_by = self.spawned_by
        new.spawned = dict(self.spawned)
        new.loop = self.loop
        new.parallel = self.parallel
        new.inserted = self.inserted
        new.saga_mode = self.saga_mode
        new.metadata = dict(self.metadata)
        new.labels = self.labels
        new.definition = self.definition
        new.extra = dict(self.extra)
        return new

    def after_step(self, step: str, *, completed: bool) -> Runtime:
        """The bookkeeping once ``step`` has run: its attempt count, input, waits and
        hand-overs cleared; if it ``completed``, its loop or fan-out progress too, and it
        joins ``completed``."""
        runtime = self.copy()
        runtime.attempts.pop(step, None)
        runtime.pending_input = runtime.waiting_reason = None
        runtime.child = runtime.execution = runtime.compensate = runtime.retry_at = None
        runtime.lost = {}
        if completed:
            runtime.loop = runtime.parallel = None
            runtime.completed.append(step)
        return runtime


_FIELDS = tuple(f.name for f in fields(Runtime) if f.name != "extra")
_FIELD_SET = frozenset(_FIELDS)
_new = object.__new__
