"""What the server reads besides the engine's own queries: a filtered, keyset-paginated
list of workflows, the workers' liveness and the runs started and ended per minute.

Only the PostgreSQL store answers these (the server runs on PostgreSQL); the filters are
fixed SQL fragments with placeholders, joined by :func:`search_filters`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Protocol

from ..engine.records import WorkflowRecord

_HEX = re.compile(r"^[0-9a-f]{1,32}$")


@dataclass(frozen=True)
class WorkflowSearch:
    """A list of workflows: each field set narrows it. ``q`` matches an id (in full, or a
    prefix of its hex digits) or an idempotency key prefix; ``after`` is the cursor (the
    ``created_at`` and ``id`` of the last row of the previous page)."""

    statuses: tuple[str, ...] = ()
    workflow_type: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    q: str | None = None
    after: tuple[dt.datetime, str] | None = None
    limit: int = 50


@dataclass(frozen=True)
class WorkerRow:
    name: str
    seen_at: dt.datetime
    started_at: dt.datetime
    holding: int
    alive: bool


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def id_range(q: str) -> tuple[str, str] | None:
    """The uuids whose hex digits start with ``q`` (dashes ignored), as an inclusive range
    the primary key serves; ``None`` when ``q`` cannot start an id."""
    digits = q.strip().lower().replace("-", "")
    if not _HEX.match(digits):
        return None

    def as_uuid(hex32: str) -> str:
        return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"

    return as_uuid(digits.ljust(32, "0")), as_uuid(digits.ljust(32, "f"))


def search_filters(search: WorkflowSearch) -> tuple[list[str], dict[str, Any]]:
    """The WHERE fragments and parameters of ``search`` (ANDed together)."""
    filters: list[str] = []
    params: dict[str, Any] = {"limit": search.limit}
    if search.statuses:
        filters.append("status = ANY(%(statuses)s)")
        params["statuses"] = list(search.statuses)
    if search.workflow_type:
        filters.append("workflow_type = %(workflow_type)s")
        params["workflow_type"] = search.workflow_type
    if search.created_from:
        filters.append("created_at >= %(created_from)s")
        params["created_from"] = search.created_from
    if search.created_to:
        filters.append("created_at < %(created_to)s")
        params["created_to"] = search.created_to
    if search.q:
        params["key_prefix"] = _like_prefix(search.q)
        ids = id_range(search.q)
        if ids:
            params["id_low"], params["id_high"] = ids
            filters.append("(id BETWEEN %(id_low)s::uuid AND %(id_high)s::uuid"
                           " OR idempotency_key LIKE %(key_prefix)s)")
        else:
            filters.append("idempotency_key LIKE %(key_prefix)s")
    if search.after:
        filters.append("(created_at, id) < (%(after_at)s, %(after_id)s::uuid)")
        params["after_at"], params["after_id"] = search.after
    return filters, params


class ReadStore(Protocol):
    """What the server reads (the PostgreSQL store implements it)."""

    async def search_workflows(self, search: WorkflowSearch) -> list[WorkflowRecord]: ...

    async def list_workers(self, silent_for: float) -> list[WorkerRow]: ...

    async def activity_per_minute(self, minutes: int) -> list[tuple[dt.datetime, int, int]]:
        ...
