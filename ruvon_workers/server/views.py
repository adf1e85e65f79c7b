"""The reads the API and the dashboard share, as plain dicts: a workflow, a page of the
list (with its cursor), a definition with its steps and routes, the input schema of the
step a run waits at, the fleet's health and the overview."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import uuid
from typing import Any

import anyio

from ..client import AsyncClient, WorkflowInfo
from ..definitions.models import StepDefinition, WorkflowDefinition
from ..engine.records import HistoryEntry, Status, WorkflowRecord
from ..errors import FieldError
from ..fleet.settings import FleetSettings
from ..persistence.reads import WorkflowSearch
from ..settings import default_queue

#: Statuses shown as failures on the overview.
FAILED = ("FAILED", "FAILED_ROLLED_BACK", "FAILED_CHILD_WORKFLOW", "FAILED_WORKER_CRASH")
#: Statuses of a run waiting for a person.
WAITING = ("WAITING_HUMAN",)


def workflow(info: WorkflowInfo | WorkflowRecord) -> dict[str, Any]:
    """A workflow as the API gives it (``state`` included)."""
    if isinstance(info, WorkflowRecord):
        info = WorkflowInfo.from_record(info)
    return {"id": info.id, "workflow_type": info.workflow_type, "status": info.status,
            "current_step": info.current_step, "state": info.state, "error": info.error,
            "version": info.version, "parent_id": info.parent_id,
            "idempotency_key": info.idempotency_key, "child": info.child,
            "created_at": info.created_at, "updated_at": info.updated_at}


def summary(record: WorkflowRecord) -> dict[str, Any]:
    """A workflow in a list: no state (a page of them stays small)."""
    return {"id": record.id, "workflow_type": record.workflow_type, "status": str(record.status),
            "current_step": record.current_step, "idempotency_key": record.idempotency_key,
            "error": record.error, "parent_id": record.parent_id,
            "created_at": record.created_at, "updated_at": record.updated_at,
            "completed_at": record.completed_at}


def history_row(entry: HistoryEntry) -> dict[str, Any]:
    return {"step": entry.step, "status": str(entry.status), "attempt": entry.attempt,
            "version": entry.version, "duration_ms": entry.duration_ms, "error": entry.error,
            "detail": entry.detail, "created_at": entry.created_at}


#: Detail keys the timeline shows apart: what the step changed in the state.
_CHANGES = ("changed", "removed")


def timeline_row(entry: HistoryEntry) -> dict[str, Any]:
    """A history row for the dashboard's timeline: ``notes`` is the detail but for the
    state changes, which it shows apart."""
    row = history_row(entry)
    detail = entry.detail or {}
    row["notes"] = {k: v for k, v in detail.items() if k not in _CHANGES} or None
    return row


def encode_cursor(record: WorkflowRecord) -> str:
    assert record.created_at is not None
    raw = f"{record.created_at.isoformat()}|{record.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, ident = raw.partition("|")
        return dt.datetime.fromisoformat(at), str(uuid.UUID(ident))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise FieldError(["query", "cursor"], "not a cursor this server gave") from None


def parse_statuses(values: list[str]) -> tuple[str, ...]:
    """``status`` filters: repeated or comma-separated, any case, Ruvon's aliases."""
    wanted: list[str] = []
    for value in values:
        for name in value.split(","):
            if not name.strip():
                continue
            try:
                wanted.append(Status.parse(name).value)
            except ValueError as exc:
                raise FieldError(["query", "status"], str(exc)) from None
    return tuple(dict.fromkeys(wanted))


async def page(client: AsyncClient, search: WorkflowSearch
               ) -> tuple[list[WorkflowRecord], str | None]:
    """One page of the list and the cursor of the next (``None``: the last page)."""
    wanted = dataclasses.replace(search, limit=search.limit + 1)
    records: list[WorkflowRecord] = await (await client.store()).search_workflows(wanted)
    more = len(records) > search.limit
    records = records[:search.limit]
    return records, encode_cursor(records[-1]) if more and records else None


def step(definition: WorkflowDefinition, s: StepDefinition) -> dict[str, Any]:
    """A step of a definition: what a graph needs (its routes and what follows it)."""
    routes = [{"condition": r.condition, "target": r.target or r.next_step or r.default,
               "default": r.default is not None and r.condition is None}
              for r in s.routes]
    model = definition.input_models.get(s.name)
    return {
        "name": s.name, "type": str(s.type), "description": s.description,
        "function": s.function, "next": definition.step_after(s.name), "routes": routes,
        "input_model": s.input_model,
        "input_schema": model.model_json_schema() if model is not None else None,
        "tasks": [{"name": t.name, "function": t.function_path} for t in s.tasks],
        "iterate_over": s.iterate_over, "mode": s.mode, "while_condition": s.while_condition,
        "loop_body": [e.get("function") for e in s.loop_body],
        "target_workflow_type": s.target_workflow_type,
        "compensate_function": s.compensate_function, "queue": s.queue,
        "retry_policy": s.retry_policy.model_dump() if s.retry_policy else None,
        "injected": definition.index_of(s.name) < 0,
    }


def definition(d: WorkflowDefinition) -> dict[str, Any]:
    return {"workflow_type": d.workflow_type, "workflow_version": d.workflow_version,
            "description": d.description, "saga_enabled": d.saga_enabled,
            "state_model": d.state_model_path,
            "initial_schema": d.state_model.model_json_schema(),
            "steps": [step(d, s) for s in d.all_steps]}


async def current_step_info(client: AsyncClient, workflow_id: str) -> dict[str, Any]:
    """The step a run is at, and the JSON Schema of the input it waits for (Ruvon's
    ``current_step_info``); ``input_schema`` is ``None`` when the step takes no model."""
    info = await client.get(workflow_id)
    waiting = info.status == Status.WAITING_HUMAN
    out: dict[str, Any] = {"workflow_id": info.id, "workflow_type": info.workflow_type,
                           "status": info.status, "current_step": info.current_step,
                           "waiting_for_input": waiting, "step_type": None,
                           "input_model": None, "input_schema": None}
    d = client.registry.workflows.get(info.workflow_type)
    if d is not None and info.current_step and d.has_step(info.current_step):
        s = d.step(info.current_step)
        model = d.input_models.get(s.name)
        out.update(step_type=str(s.type), input_model=s.input_model,
                   input_schema=model.model_json_schema() if model is not None else None)
    return out


def queue_names(client: AsyncClient) -> list[str]:
    names = {default_queue()}
    for d in client.registry:
        names.update(s.queue for s in d.all_steps if s.queue)
    return sorted(names)


_PRIORITY_LISTS = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _queue_depths(url: str, names: list[str]) -> dict[str, int]:
    from ..utils.redis_urls import redis_client

    conn = redis_client(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        # kombu keeps a queue's priorities in lists of their own: name, name\x06\x163, ...
        return {name: sum(int(conn.llen(name + suffix)) for suffix in _PRIORITY_LISTS)
                for name in names}
    finally:
        conn.close()


async def fleet(client: AsyncClient) -> dict[str, Any]:
    """Workers (alive: seen within ``RUVON_WORKER_SILENT``) and the depth of each queue
    on a Redis broker (``None`` when it cannot be read)."""
    silent = FleetSettings.from_env().worker_silent
    workers = await (await client.store()).list_workers(silent)
    names = queue_names(client)
    depths: dict[str, int | None] = dict.fromkeys(names)
    reachable: bool | None = None
    url = client.broker_url
    if url and url.startswith(("redis://", "rediss://", "redis+socket://", "unix://")):
        try:
            depths.update(await anyio.to_thread.run_sync(_queue_depths, url, names))
            reachable = True
        except Exception:
            reachable = False
    return {"workers": [w.__dict__ for w in workers],
            "workers_alive": sum(1 for w in workers if w.alive),
            "queues": depths, "broker_reachable": reachable}


async def overview(client: AsyncClient, minutes: int = 30) -> dict[str, Any]:
    store = await client.store()
    counts: dict[str, int] = await store.count_by_status()
    activity = await store.activity_per_minute(minutes)
    failures: list[WorkflowRecord] = await store.search_workflows(
        WorkflowSearch(statuses=FAILED, limit=10))
    return {"counts": dict(sorted(counts.items())), "total": sum(counts.values()),
            "activity": [{"minute": m, "started": s, "ended": e} for m, s, e in activity],
            "recent_failures": [summary(r) for r in failures],
            "fleet": await fleet(client)}
