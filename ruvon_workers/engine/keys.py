"""Idempotency keys of workflows: the ones the engine builds, and the producer's.

A workflow's key is unique per workflow type, not across types. The engine keys the runs
it starts itself (a sub-workflow, a FIRE_AND_FORGET run, a CRON tick) under the reserved
prefix ``ruvon:``, which no producer may use: otherwise a producer that picked the same
text (``schedule:nightly:<tick>``, ``<parent-id>:<step>:<version>``) would take over a
future tick or a step's sub-workflow, since a start with a key already used returns the
run that holds it. The key a step function sees (``StepContext.idempotency_key``) is a
different thing, for side effects in external systems, and keeps its own form.
"""

from __future__ import annotations

import datetime as dt

from ..errors import InvalidStateError

#: Keys the engine builds; a producer's key may not start with it.
RESERVED_PREFIX = "ruvon:"


def child_key(parent_id: str, step: str, version: int) -> str:
    """The key of the sub-workflow step ``step`` of ``parent_id`` starts in its execution
    at ``version``: a re-run of that step finds it instead of starting another. Reserved
    (``ruvon:``), so no producer can start a run that a step then adopts."""
    return f"{RESERVED_PREFIX}child:{parent_id}:{step}:{version}"


def spawn_key(origin_id: str, step: str, version: int) -> str:
    """The key of the FIRE_AND_FORGET run step ``step`` of ``origin_id`` starts (as
    :func:`child_key`, and reserved for the same reason)."""
    return f"{RESERVED_PREFIX}spawn:{origin_id}:{step}:{version}"


def tick_key(name: str, tick: dt.datetime) -> str:
    """The key of the run schedule ``name`` starts for ``tick``: a tick fired twice starts
    one run. Reserved (``ruvon:``), so no producer can start a run that a future tick
    would then return instead of starting its own."""
    return f"{RESERVED_PREFIX}schedule:{name}:{tick.astimezone(dt.UTC).isoformat()}"


def producer_key(key: str | None, what: str = "idempotency_key") -> str | None:
    """``key`` as a producer gave it; refused when it is in the engine's namespace."""
    if key is not None and key.startswith(RESERVED_PREFIX):
        raise InvalidStateError(
            what, detail=f"{key!r} starts with {RESERVED_PREFIX!r}, which is reserved for "
                         "the keys of the runs the engine starts itself (sub-workflows, "
                         "FIRE_AND_FORGET runs, CRON ticks); choose another key")
    return key
