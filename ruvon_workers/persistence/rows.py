"""Typed rows the stores return (and take): plain frozen dataclasses, no database code.

Every store builds these, so callers read ``row.name`` whichever store is behind them.
``dataclasses.asdict(row)`` gives the row as a dict, its keys in field order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScheduleSpec:
    """What a CRON_SCHEDULE step stores (``upsert_schedule``): by name, so a step that
    runs again updates its schedule. ``next_run_at`` is kept when ``cron_expression`` is
    unchanged, and ``created_by`` is the workflow that stored the schedule first."""

    name: str
    workflow_type: str
    cron_expression: str
    initial_data: dict[str, Any]
    next_run_at: dt.datetime
    created_by: str | None = None

    @classmethod
    def of(cls, value: ScheduleSpec | Mapping[str, Any]) -> ScheduleSpec:
        """``value`` itself, or the spec a mapping with the same keys describes."""
        if isinstance(value, ScheduleSpec):
            return value
        return cls(name=value["name"], workflow_type=value["workflow_type"],
                   cron_expression=value["cron_expression"],
                   initial_data=dict(value.get("initial_data") or {}),
                   next_run_at=value["next_run_at"],
                   created_by=_text(value.get("created_by")))


@dataclass(frozen=True)
class Schedule:
    """A stored schedule: its spec and what the schedulers made of it."""

    name: str
    workflow_type: str
    cron_expression: str
    initial_data: dict[str, Any]
    next_run_at: dt.datetime
    #: The tick that fired last (``None``: never fired).
    last_run_at: dt.datetime | None
    #: The workflow that tick started (``None`` when it could not start one).
    last_workflow_id: str | None
    runs: int
    created_by: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class DeadLetter:
    """A message the fleet refused, and why."""

    id: int
    task: str | None
    workflow_id: str | None
    reason: str
    payload: Any
    created_at: dt.datetime


@dataclass(frozen=True)
class StepStats:
    """Durations of one step's completed runs in one workflow type (milliseconds; the
    percentiles interpolate, as PostgreSQL's ``percentile_cont``)."""

    step: str | None
    n: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
