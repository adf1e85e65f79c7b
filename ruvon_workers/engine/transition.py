"""What one event does to a run, ready to be committed: :class:`Transition`."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, TypedDict

from ..directives import StartSubWorkflowDirective
from .records import Branch, HistoryEntry, RecordUpdate, Status
from .runtime import HELD


class Spawn(TypedDict):
    """The independent workflow a FIRE_AND_FORGET step starts."""

    workflow_type: str | None
    initial_data: dict[str, Any]


@dataclass
class Transition:
    """The new row, its history entries, and what the caller does around the commit.

    The engine computes it and writes nothing; the caller performs the side effects
    (idempotently), commits ``update`` with a compare-and-set, then sends or runs what
    comes next. A transition whose commit loses changes nothing.
    """

    update: RecordUpdate
    history: list[HistoryEntry]
    step: str
    result: object = None
    jumped_to: str | None = None
    #: Seconds until the step runs again (a failed attempt its retry policy retries).
    retry_delay: float | None = None
    #: ``automate_next: true``: the next step runs at once, in the same call.
    auto_continue: bool = False
    #: ``automate_next: false`` and nobody drives the run step by step (the fleet): see
    #: :meth:`hold_for_operator`.
    hold: bool = False
    #: Side effects performed before the commit:
    child: StartSubWorkflowDirective | None = None  # start a sub-workflow and wait for it
    spawn: Spawn | None = None  # FIRE_AND_FORGET: start an independent workflow
    schedule: dict[str, Any] | None = None  # CRON_SCHEDULE: store a schedule
    fanout: list[Branch] | None = None  # PARALLEL: the branches to run
    #: Side effects performed after the commit:
    cancel_child: str | None = None  # the sub-workflow to cancel (reason), see ``cancel``
    #: What the step raised, when it failed the run (in-process callers re-raise it as the
    #: ``original_exception`` of their error).
    cause: BaseException | None = None

    @property
    def status(self) -> str:
        return self.update.status

    def hold_for_operator(self) -> Transition:
        """Where no caller steps the run along, a step with ``automate_next: false`` makes
        the run wait (WAITING_HUMAN) until an operator resumes it."""
        if self.hold and self.update.status == Status.ACTIVE:
            self.update.status = Status.WAITING_HUMAN
            self.update.runtime.waiting_reason = HELD
            self.update.runtime.waiting_for = self.update.current_step
            self.history.append(HistoryEntry(self.update.current_step, "WAITING", 1))
            self.hold = False
        return self

    def add_detail(self, **values: Any) -> None:
        """Add ``values`` to the detail of the transition's first history entry."""
        if self.history:
            entry = self.history[0]
            entry.detail = {**(entry.detail or {}), **values}


def error_info(step: str | None, exc: BaseException) -> dict[str, Any]:
    """The stored form of an error: step, type, message and the end of the traceback."""
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
    # NUL cannot be stored in jsonb: an error quoting one (an HTTP body excerpt, say)
    # must still be recordable.
    return {"step": step, "type": type(exc).__name__,
            "message": str(exc).replace("\x00", "\\x00"),
            "traceback": "".join(tb)[-2000:].replace("\x00", "\\x00")}


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
