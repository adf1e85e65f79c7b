"""Producer clients: start, inspect and steer workflows that run on the fleet.

``AsyncClient`` for asyncio code, ``Client`` for everything else (safe to share between
threads: its calls run on one private event loop). Both validate before anything is
stored or sent: an unknown workflow type, initial data the state model rejects, input the
waiting step's ``input_model`` rejects, or an unknown id raise at once; initial data or
input over ``RUVON_MAX_INPUT_BYTES`` is refused before the client needs a broker.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import datetime as dt
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .definitions import Registry, load_registry
from .engine.keys import producer_key
from .engine.records import Branch, HistoryEntry, Status, WorkflowRecord
from .engine.values import check_input_size
from .errors import InvalidTransition, WorkflowNotFound
from .persistence.rows import DeadLetter, Schedule, StepStats
from .settings import broker_url as env_broker_url
from .settings import database_url as env_database_url
from .settings import registry_path
from .utils.loop import LoopThread

#: ``wait`` returns at these: the run ended, or waits for a person (itself or its child).
SETTLED = frozenset({*(s.value for s in Status if s.is_terminal), Status.WAITING_HUMAN,
                     Status.WAITING_CHILD_HUMAN_INPUT})


@dataclass(frozen=True)
class WorkflowInfo:
    id: str
    workflow_type: str
    status: str
    current_step: str | None
    state: dict[str, Any]
    error: dict[str, Any] | None
    version: int
    parent_id: str | None
    idempotency_key: str | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    #: While PENDING_SUB_WORKFLOW: the sub-workflow's ``id``, ``workflow_type``,
    #: ``status`` and ``current_step`` (a child waiting for input shows here).
    child: dict[str, Any] | None = None

    @classmethod
    def from_record(cls, record: WorkflowRecord) -> WorkflowInfo:
        return cls(record.id, record.workflow_type, str(record.status), record.current_step,
                   record.state, record.error, record.version, record.parent_id,
                   record.idempotency_key, record.created_at, record.updated_at,
                   dict(record.runtime.child) if record.runtime.child else None)

    @property
    def finished(self) -> bool:
        return Status(self.status).is_terminal


class AsyncClient:
    def __init__(self, database_url: str | None = None, broker_url: str | None = None,
                 registry: str | Path | Registry | None = None):
        self.database_url = env_database_url(database_url)
        # Only what sends (start, resume, retry, cancel) needs the broker: reading a
        # workflow, its history or the lists needs the database alone.
        self.broker_url = env_broker_url(broker_url, required=False)
        self.registry = (registry if isinstance(registry, Registry)
                         else load_registry(registry_path(registry)))
        self._persistence: Any = None
        self._coordinator: Any = None
        self._lock = asyncio.Lock()

    async def _store(self) -> Any:
        """The client's store (its pool opened on first use)."""
        if self._persistence is None:
            async with self._lock:
                if self._persistence is None:
                    from .fleet.factory import build_store

                    persistence = build_store("client", self.database_url)
                    await persistence.initialize()
                    self._persistence = persistence
        return self._persistence

    async def _ready(self) -> Any:
        """The coordinator, for what sends messages (needs ``CELERY_BROKER_URL``)."""
        if self._coordinator is None:
            persistence = await self._store()
            async with self._lock:
                if self._coordinator is None:
                    from .fleet.app import create_app
                    from .fleet.factory import build_coordinator

                    app = create_app(self.registry, self.broker_url)
                    self._app = app
                    self._coordinator = build_coordinator(persistence, app=app,
                                                          registry=self.registry)
        return self._coordinator

    async def _load(self, workflow_id: str) -> WorkflowRecord:
        record: WorkflowRecord | None = await (await self._store()).load_workflow(workflow_id)
        if record is None:
            raise WorkflowNotFound(workflow_id)
        return record

    async def close(self) -> None:
        if self._coordinator is not None:
            self._app.close()
            self._coordinator = None
        if self._persistence is not None:
            await self._persistence.close()
            self._persistence = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, workflow_type: str, initial_data: dict[str, Any] | None = None,
                    idempotency_key: str | None = None) -> str:
        """Store and dispatch a new workflow; the same key (for the same workflow type)
        returns the same workflow id. A key starting with ``ruvon:`` is refused."""
        info, _ = await self.start_info(workflow_type, initial_data, idempotency_key)
        return info.id

    async def start_info(self, workflow_type: str, initial_data: dict[str, Any] | None = None,
                         idempotency_key: str | None = None) -> tuple[WorkflowInfo, bool]:
        """As :meth:`start`, giving the stored workflow and whether this call created it
        (``False``: the key already named one)."""
        producer_key(idempotency_key)
        check_input_size(initial_data, f"Initial data for '{workflow_type}'")
        coordinator = await self._ready()
        record, created = await coordinator.start(workflow_type, initial_data,
                                                  idempotency_key=idempotency_key)
        return WorkflowInfo.from_record(record), bool(created)

    async def store(self) -> Any:
        """The client's store, for reads beyond these methods (the server's lists)."""
        return await self._store()

    async def get(self, workflow_id: str) -> WorkflowInfo:
        return WorkflowInfo.from_record(await self._load(workflow_id))

    async def branches(self, workflow_id: str) -> builtins.list[dict[str, Any]]:
        """The branches of the PARALLEL step a PENDING_ASYNC workflow waits on (``idx``,
        ``name``, ``status``, ``attempt``, ``error``, ``duration_ms``); else ``[]``."""
        record = await self._load(workflow_id)
        if record.status != Status.PENDING_ASYNC:
            return []
        branches: builtins.list[Branch] = await (await self._store()).list_branches(
            record.id, record.version)
        return [{"idx": b.idx, "name": b.name, "status": b.status, "attempt": b.attempt,
                 "error": b.error, "duration_ms": b.duration_ms} for b in branches]

    async def wait(self, workflow_id: str, timeout: float = 30.0) -> WorkflowInfo:
        """Wait until the workflow finishes or waits for input; ``TimeoutError`` after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            info = await self.get(workflow_id)
            if info.status in SETTLED:
                return info
            if time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {workflow_id} still {info.status} at step "
                                   f"{info.current_step!r} after {timeout:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def resume(self, workflow_id: str, user_input: dict[str, Any] | None = None, *,
                     by: str | None = None) -> None:
        """``by``: who gives the input, kept in the run's history (``RESUMED``)."""
        check_input_size(user_input or {}, f"Input for workflow '{workflow_id}'")
        coordinator = await self._ready()
        await coordinator.resume(workflow_id, user_input or {}, by)

    async def cancel(self, workflow_id: str, reason: str = "cancelled", *,
                     by: str | None = None) -> None:
        """``by``: who asks, kept in the run's history (``CANCELLED``)."""
        coordinator = await self._ready()
        await coordinator.cancel(workflow_id, reason, by)

    async def retry(self, workflow_id: str, from_step: str | None = None, *,
                    by: str | None = None) -> None:
        """``by``: who asks, kept in the run's history (``RETRIED``)."""
        coordinator = await self._ready()
        await coordinator.retry(workflow_id, from_step, by)

    async def list(self, status: str | None = None, workflow_type: str | None = None,
                   limit: int = 50) -> builtins.list[WorkflowInfo]:
        wanted = Status.parse(status).value if status else None
        records = await (await self._store()).list_workflows(
            status=wanted, workflow_type=workflow_type, limit=limit)
        return [WorkflowInfo.from_record(r) for r in records]

    async def history(self, workflow_id: str) -> builtins.list[HistoryEntry]:
        await self._load(workflow_id)
        history: builtins.list[HistoryEntry] = await (await self._store()).history(workflow_id)
        return history

    async def dead_letters(self, limit: int = 50) -> builtins.list[dict[str, Any]]:
        """Messages the fleet refused, newest first."""
        rows: builtins.list[DeadLetter] = await (await self._store()).dead_letters(limit)
        return [dataclasses.asdict(row) for row in rows]

    async def schedules(self) -> builtins.list[dict[str, Any]]:
        """The CRON schedules CRON_SCHEDULE steps stored, by name."""
        rows: builtins.list[Schedule] = await (await self._store()).list_schedules()
        return [dataclasses.asdict(row) for row in rows]

    async def remove_schedule(self, name: str) -> bool:
        removed: bool = await (await self._store()).delete_schedule(name)
        return removed

    async def step_durations(self, workflow_type: str) -> builtins.list[dict[str, Any]]:
        self.registry.get(workflow_type)
        durations = (await self._store()).step_durations(workflow_type)
        rows: builtins.list[StepStats] = await durations
        return [dataclasses.asdict(row) for row in rows]


class Client:
    """The synchronous producer client; every method mirrors :class:`AsyncClient`."""

    def __init__(self, database_url: str | None = None, broker_url: str | None = None,
                 registry: str | Path | Registry | None = None):
        self._async = AsyncClient(database_url, broker_url, registry)
        self._loop: LoopThread | None = None
        self._loop_lock = threading.Lock()

    @property
    def registry(self) -> Registry:
        return self._async.registry

    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            with self._loop_lock:
                if self._loop is None:
                    self._loop = LoopThread(name="ruvon-client")
        return self._loop.run(coro)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run(self._async.close())
            self._loop.stop()
            self._loop = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, workflow_type: str, initial_data: dict[str, Any] | None = None,
              idempotency_key: str | None = None) -> str:
        return str(self._run(self._async.start(workflow_type, initial_data, idempotency_key)))

    def get(self, workflow_id: str) -> WorkflowInfo:
        info: WorkflowInfo = self._run(self._async.get(workflow_id))
        return info

    def branches(self, workflow_id: str) -> builtins.list[dict[str, Any]]:
        rows: builtins.list[dict[str, Any]] = self._run(self._async.branches(workflow_id))
        return rows

    def wait(self, workflow_id: str, timeout: float = 30.0) -> WorkflowInfo:
        info: WorkflowInfo = self._run(self._async.wait(workflow_id, timeout))
        return info

    def resume(self, workflow_id: str, user_input: dict[str, Any] | None = None, *,
               by: str | None = None) -> None:
        self._run(self._async.resume(workflow_id, user_input, by=by))

    def cancel(self, workflow_id: str, reason: str = "cancelled", *,
               by: str | None = None) -> None:
        self._run(self._async.cancel(workflow_id, reason, by=by))

    def retry(self, workflow_id: str, from_step: str | None = None, *,
              by: str | None = None) -> None:
        self._run(self._async.retry(workflow_id, from_step, by=by))

    def list(self, status: str | None = None, workflow_type: str | None = None,
             limit: int = 50) -> builtins.list[WorkflowInfo]:
        rows: builtins.list[WorkflowInfo] = self._run(
            self._async.list(status, workflow_type, limit))
        return rows

    def history(self, workflow_id: str) -> builtins.list[HistoryEntry]:
        rows: builtins.list[HistoryEntry] = self._run(self._async.history(workflow_id))
        return rows

    def dead_letters(self, limit: int = 50) -> builtins.list[dict[str, Any]]:
        rows: builtins.list[dict[str, Any]] = self._run(self._async.dead_letters(limit))
        return rows

    def step_durations(self, workflow_type: str) -> builtins.list[dict[str, Any]]:
        rows: builtins.list[dict[str, Any]] = self._run(self._async.step_durations(workflow_type))
        return rows

    def schedules(self) -> builtins.list[dict[str, Any]]:
        rows: builtins.list[dict[str, Any]] = self._run(self._async.schedules())
        return rows

    def remove_schedule(self, name: str) -> bool:
        removed: bool = self._run(self._async.remove_schedule(name))
        return removed


__all__ = ["AsyncClient", "Client", "InvalidTransition", "WorkflowInfo"]
