"""CRON_SCHEDULE: schedules stored in PostgreSQL, fired by the fleet.

Every worker runs a scheduler. Firing is safe with any number of them: a tick starts its
workflow with the idempotency key ``ruvon:schedule:<name>:<tick>`` (``engine.keys``: a
key no producer can give), so a tick fired twice (two
schedulers, or one that crashed before moving the schedule on) starts one workflow, and
the schedule moves to its next tick by compare-and-set. Times are UTC. A scheduler that
was down for several ticks fires the latest one once, not every one it missed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from croniter import croniter

from .engine.keys import tick_key
from .errors import DatabaseError, UnknownWorkflowType
from .persistence.base import ScheduleStore

log = logging.getLogger("ruvon.scheduler")

_unknown_warned: set[str] = set()

#: ``start(workflow_type, initial_data, tick_key) -> workflow_id`` (the key is internal)
Starter = Callable[[str, dict[str, Any], str], Awaitable[str]]


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression, or ``None``."""
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        return (f"'{expression}' is not a cron expression (5 fields: minute hour day month "
                "weekday, and an optional 6th for seconds)")
    return None


def next_tick(expression: str, after: dt.datetime) -> dt.datetime:
    """The first tick of ``expression`` strictly after ``after`` (UTC)."""
    if after.tzinfo is None:
        after = after.replace(tzinfo=dt.UTC)
    tick: dt.datetime = croniter(expression, after.astimezone(dt.UTC)).get_next(dt.datetime)
    return tick


def latest_tick(expression: str, due: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The latest tick of ``expression`` at or before ``now``, and not before ``due``
    (the tick the schedule waits for): after downtime, the one to fire."""
    if due.tzinfo is None:
        due = due.replace(tzinfo=dt.UTC)
    previous: dt.datetime = croniter(expression, now.astimezone(dt.UTC) + dt.timedelta(
        microseconds=1)).get_prev(dt.datetime)
    return max(due, previous)


async def fire_due(persistence: ScheduleStore, start: Starter, *, limit: int = 50,
                   workflow_types: list[str] | None = None) -> int:
    """Start the workflow of every schedule whose tick has come; return how many fired.
    With ``workflow_types``, only schedules of those types are looked at."""
    fired = 0
    for schedule in await persistence.due_schedules(limit, workflow_types):
        name, tick = schedule.name, schedule.next_run_at
        now = dt.datetime.now(dt.UTC)
        firing = latest_tick(schedule.cron_expression, tick, now)
        workflow_id: str | None = None
        try:
            workflow_id = await start(schedule.workflow_type,
                                      dict(schedule.initial_data or {}),
                                      tick_key(name, firing))
            fired += 1
        except UnknownWorkflowType:
            # Another worker's registry may have it (fleets split by team or queue): leave
            # the tick to that one.
            if name not in _unknown_warned:
                _unknown_warned.add(name)
                log.warning("schedule %s starts %s, which this worker's registry lacks; "
                            "left to a worker that has it", name, schedule.workflow_type)
            continue
        except DatabaseError:
            raise  # the tick stays due; the next round fires it
        except Exception as exc:
            # A schedule that cannot start (data its model rejects) must not fire in a
            # loop: log it and move on to the next tick.
            log.error("schedule %s: starting %s failed: %s", name, schedule.workflow_type, exc)
        following = next_tick(schedule.cron_expression, max(firing, now))
        if await persistence.advance_schedule(name, tick, following, workflow_id, firing):
            log.info("schedule %s fired for %s (workflow %s); next at %s", name,
                     firing.isoformat(), workflow_id, following.isoformat())
    return fired
