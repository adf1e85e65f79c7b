"""PostgreSQL store: psycopg 3, an async connection pool, orjson at the boundary.

This module is the only one that sees the driver's errors: every ``psycopg.Error`` (the
pool's ``PoolTimeout``, ``TooManyRequests`` and ``PoolClosed`` among them) leaves it as
:class:`~ruvon_workers.errors.UnstorableValue` (a value PostgreSQL refuses: retrying
cannot help) or :class:`~ruvon_workers.errors.DatabaseError` (the fleet retries it).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql as psql
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg_pool import (
    AsyncConnectionPool,
    ConnectionPool,
    PoolClosed,
    PoolTimeout,
    TooManyRequests,
)

from ..engine.records import Branch, HistoryEntry, RecordUpdate, WorkflowRecord
from ..engine.runtime import Runtime
from ..errors import DatabaseError, RuvonError, StaleStateError, UnstorableValue
from ..utils.serialization import deserialize, dumps_bytes
from . import sql
from .base import (
    DueStep,
    Held,
    HeldMessage,
    Reaped,
    dead_letter_values,
    ended_statuses,
    same_workflow,
)
from .reads import WorkerRow, WorkflowSearch, search_filters
from .rows import DeadLetter, Schedule, ScheduleSpec, StepStats

_RECORD_COLUMNS = 14

# Observers receive (operation, seconds) for every query; metrics hang off this.
QUERY_OBSERVERS: list[Callable[[str, float], None]] = []


def _env_number(name: str, given: float | None, default: float) -> float:
    if given is not None:
        return given
    raw = os.getenv(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise RuvonError(f"{name}={raw!r} is not a number") from None


def configure_json(conn: psycopg.AsyncConnection | psycopg.Connection) -> None:
    """Make psycopg use the project's JSON codec (orjson unless switched off)."""
    set_json_dumps(dumps_bytes, context=conn)
    set_json_loads(deserialize, context=conn)


def row_to_record(row: tuple[Any, ...]) -> WorkflowRecord:
    return WorkflowRecord(
        id=str(row[0]),
        workflow_type=row[1],
        workflow_version=row[2],
        status=row[3],
        current_step=row[4],
        state=row[5],
        version=row[6],
        runtime=Runtime.from_dict(row[7]),
        idempotency_key=row[8],
        parent_id=str(row[9]) if row[9] else None,
        error=row[10],
        created_at=row[11],
        updated_at=row[12],
        completed_at=row[13],
    )


def _schedule(row: tuple[Any, ...]) -> Schedule:
    """A ``ruvon_schedules`` row (``list_schedules``' columns); uuids as text."""
    return Schedule(name=row[0], workflow_type=row[1], cron_expression=row[2],
                    initial_data=row[3], next_run_at=row[4], last_run_at=row[5],
                    last_workflow_id=str(row[6]) if row[6] is not None else None,
                    runs=int(row[7]), created_by=str(row[8]) if row[8] is not None else None,
                    created_at=row[9])


class PostgresPersistenceProvider:
    """Workflow state in PostgreSQL; every write is a compare-and-set on ``version``."""

    def __init__(
        self,
        db_url: str,
        pool_min_size: int | None = None,
        pool_max_size: int | None = None,
        pool_command_timeout: float | None = None,
        pool_max_queries: int | None = None,
        pool_max_inactive_lifetime: float | None = None,
        *,
        pool_timeout: float | None = None,
        check_connections: bool = False,
    ):
        """``pool_timeout``: seconds to wait for a free connection before giving up with
        :class:`DatabaseError` (default: the command timeout, at least 5).
        ``check_connections``: check each connection before handing it out, so the first
        call after a PostgreSQL restart does not meet a dead one (a round trip per call:
        for long-lived clients and background threads, not the step path, whose task
        retries such an error anyway)."""
        self.db_url = db_url
        self.pool_min_size = int(_env_number("POSTGRES_POOL_MIN_SIZE", pool_min_size, 10))
        self.pool_max_size = int(_env_number("POSTGRES_POOL_MAX_SIZE", pool_max_size, 50))
        self.pool_max_size = max(self.pool_max_size, self.pool_min_size)
        self.pool_command_timeout = _env_number("POSTGRES_POOL_COMMAND_TIMEOUT",
                                                pool_command_timeout, 10)
        self.pool_max_queries = int(_env_number("POSTGRES_POOL_MAX_QUERIES", pool_max_queries,
                                                50000))
        self.pool_max_inactive_lifetime = _env_number("POSTGRES_POOL_MAX_INACTIVE_LIFETIME",
                                                      pool_max_inactive_lifetime, 300)
        self.pool_timeout = (pool_timeout if pool_timeout is not None
                             else max(self.pool_command_timeout, 5.0))
        self.check_connections = check_connections
        self._pool: AsyncConnectionPool | None = None
        self._uses: dict[int, int] = {}

    def _pool_kwargs(self) -> dict[str, Any]:
        timeout_ms = int(self.pool_command_timeout * 1000)
        return {
            "min_size": self.pool_min_size,
            "max_size": self.pool_max_size,
            "max_idle": self.pool_max_inactive_lifetime,
            "timeout": self.pool_timeout,
            "kwargs": {"autocommit": True, "options": f"-c statement_timeout={timeout_ms}"},
            "open": False,
            "name": "ruvon",
        }

    def _unreachable(self, exc: Exception) -> DatabaseError:
        return DatabaseError(f"Cannot connect to PostgreSQL at {_redact(self.db_url)}: {exc}. "
                             "Check DATABASE_URL and that the server is running.")

    def _translate(self, operation: str, exc: psycopg.Error) -> RuvonError:
        """The driver's error as ours: a value PostgreSQL refuses is :class:`UnstorableValue`
        (the same write cannot succeed), anything else a :class:`DatabaseError` that says
        what to do."""
        if isinstance(exc, psycopg.DataError):
            return UnstorableValue(operation, str(exc).strip())
        # The server's own message without the quoted statement; the client's otherwise.
        detail = exc.diag.message_primary or str(exc).strip() or type(exc).__name__
        if isinstance(exc, PoolTimeout | TooManyRequests):
            return DatabaseError(
                f"No free PostgreSQL connection for {operation}: {detail}. All "
                f"{self.pool_max_size} connections of this process's pool are in use: raise "
                "POSTGRES_POOL_MAX_SIZE (or run fewer steps at once per process), and check "
                f"that the server at {_redact(self.db_url)} answers.")
        if isinstance(exc, PoolClosed):
            return DatabaseError(f"Cannot run {operation}: the connection pool is closed "
                                 f"({detail}). Call `await persistence.initialize()` before "
                                 "using the store again.")
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return DatabaseError(f"PostgreSQL cancelled {operation}: {detail}. A statement "
                                 "may take at most POSTGRES_POOL_COMMAND_TIMEOUT "
                                 f"({self.pool_command_timeout:g}s): raise it, or check the "
                                 "server's load.")
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return DatabaseError(f"PostgreSQL error during {operation}: {detail}. Check "
                                 f"DATABASE_URL ({_redact(self.db_url)}) and that the server "
                                 "is running.")
        if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn
                      | psycopg.errors.UndefinedFunction):
            return DatabaseError(f"PostgreSQL error during {operation}: {detail}. The schema "
                                 f"of {_redact(self.db_url)} is missing or older than this "
                                 "version: apply it with `ruvon-workers db migrate`.")
        return DatabaseError(f"PostgreSQL error during {operation}: {detail}. If the schema "
                             "is older than this version, apply it with `ruvon-workers db "
                             "migrate`.")

    @property
    def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise RuvonError("PostgresPersistenceProvider is not initialized: "
                             "call `await persistence.initialize()` first")
        return self._pool

    async def initialize(self) -> None:
        if self._pool is not None:
            return
        check = AsyncConnectionPool.check_connection if self.check_connections else None
        pool = AsyncConnectionPool(self.db_url, configure=self._configure, check=check,
                                   **self._pool_kwargs())
        try:
            await pool.open(wait=True, timeout=max(self.pool_command_timeout, 5.0))
        except Exception as exc:
            await pool.close()
            raise self._unreachable(exc) from exc
        self._pool = pool

    @staticmethod
    async def _configure(conn: psycopg.AsyncConnection) -> None:
        configure_json(conn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def pool_stats(self) -> dict[str, int]:
        return dict(self._pool.get_stats()) if self._pool else {}

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A connection of the pool; failing to get one raises :class:`DatabaseError`.
        Errors of the queries run on it are the caller's to translate."""
        checked_out = False
        try:
            async with self._connection() as conn:
                checked_out = True
                yield conn
        except psycopg.Error as exc:
            if checked_out:
                raise
            raise self._translate("a connection checkout", exc) from exc

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        async with self.pool.connection() as conn:
            yield conn
            # Recycle a connection after pool_max_queries uses (asyncpg's max_queries).
            uses = self._uses.get(id(conn), 0) + 1
            if uses >= self.pool_max_queries:
                self._uses.pop(id(conn), None)
                await conn.close()
            else:
                self._uses[id(conn)] = uses

    async def _fetch(self, operation: str, name: str, params: dict[str, Any],
                     many: bool | None = False) -> Any:
        """Run a named query; ``many``: all rows, ``False``: one row, ``None``: no rows."""
        started = time.perf_counter()
        try:
            result = await self._query(sql.query(name), params, many)
        except psycopg.Error as exc:
            raise self._translate(operation, exc) from exc
        finally:
            elapsed = time.perf_counter() - started
            for observe in QUERY_OBSERVERS:
                observe(operation, elapsed)
        return result

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Connection pinning is for the blocking store; here each query checks one out."""
        yield

    async def _query(self, query: str, params: dict[str, Any], many: bool | None) -> Any:
        # Raw: _fetch translates errors, naming its operation.
        async with self._connection() as conn:
            cur = await conn.execute(query, params, prepare=True)
            if many is None:
                return None
            return await (cur.fetchall() if many else cur.fetchone())

    async def create_workflow(self, record: WorkflowRecord,
                              due_in: float | None = None) -> tuple[WorkflowRecord, bool]:
        row = await self._fetch("create_workflow", "insert_workflow", {
            "id": record.id,
            "workflow_type": record.workflow_type,
            "workflow_version": record.workflow_version,
            "status": str(record.status),
            "current_step": record.current_step,
            "state": Jsonb(record.state),
            "runtime": Jsonb(record.runtime.to_dict()),
            "idempotency_key": record.idempotency_key,
            "parent_id": record.parent_id,
            "due_in": due_in,
        })
        if row is None:
            existing = None
            if record.idempotency_key is not None:
                existing = await self._fetch("load_workflow", "get_workflow_by_key",
                                             {"workflow_type": record.workflow_type,
                                              "idempotency_key": record.idempotency_key})
            if existing is None:
                existing = await self._fetch("load_workflow", "get_workflow", {"id": record.id})
            if existing is None:  # the holder was deleted between the two statements
                raise DatabaseError(f"workflow {record.id} conflicted with one that vanished; "
                                    "retry")
            return same_workflow(record, row_to_record(existing)), False
        record.version, record.created_at, record.updated_at = row[1], row[2], row[3]
        return record, True

    async def load_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        row = await self._fetch("load_workflow", "get_workflow", {"id": _uuid(workflow_id)})
        return row_to_record(row) if row else None

    async def apply(self, workflow_id: str, expected_version: int, update: RecordUpdate,
                    history: list[HistoryEntry]) -> int:
        row = await self._fetch("save_workflow", "apply_transition", {
            "id": workflow_id,
            "expected_version": expected_version,
            "status": str(update.status),
            "current_step": update.current_step,
            "state": Jsonb(update.state),
            "runtime": Jsonb(update.runtime.to_dict()),
            "error": Jsonb(update.error) if update.error is not None else None,
            "due_in": update.due_in,
            "terminal": update.terminal,
            "history": Jsonb([h.as_row() for h in history]),
        })
        if row is None:
            current = await self._fetch("load_workflow", "current_version",
                                        {"id": _uuid(workflow_id)})
            raise StaleStateError(str(workflow_id), expected_version,
                                  current[0] if current else None)
        return int(row[0])

    async def history(self, workflow_id: str) -> list[HistoryEntry]:
        rows = await self._fetch("history", "step_history", {"id": _uuid(workflow_id)}, many=True)
        return [HistoryEntry(step=r[0], status=r[1], attempt=r[2], version=r[3],
                             duration_ms=r[4], error=r[5], detail=r[6], created_at=r[7])
                for r in rows]

    async def list_workflows(self, *, status: str | None = None,
                             workflow_type: str | None = None,
                             limit: int = 50) -> list[WorkflowRecord]:
        rows = await self._fetch("list_workflows", "list_workflows", {
            "status": status, "workflow_type": workflow_type, "limit": limit}, many=True)
        return [row_to_record(r) for r in rows]

    async def claim_due(self, *, lease_seconds: float, limit: int = 100,
                        workflow_types: list[str] | None = None) -> list[DueStep]:
        params = {"lease": lease_seconds, "limit": limit, "types": workflow_types}
        rows = await self._fetch("claim_due", "claim_due", params, many=True)
        due = [DueStep(str(r[0]), r[1], r[2], r[3]) for r in rows]
        await self._fetch("claim_due", "abandon_stale_branches", {"limit": limit}, many=None)
        rows = await self._fetch("claim_due", "claim_due_branches", params, many=True)
        return due + [DueStep(str(r[0]), r[1], r[2], r[3], branch=r[4]) for r in rows]

    async def extend_due(self, item: DueStep, lease_seconds: float) -> None:
        params = {"id": item.workflow_id, "version": item.version, "idx": item.branch,
                  "lease": lease_seconds}
        name = "extend_due" if item.branch is None else "extend_branch_due"
        await self._fetch("claim_due", name, params, many=None)

    # -- PARALLEL fan-outs ----------------------------------------------------------------

    async def create_fanout(self, workflow_id: str, version: int, step: str,
                            branches: list[Branch], lease_seconds: float) -> None:
        await self._fetch("create_fanout", "insert_fanout", {
            "id": workflow_id, "version": version, "step": step, "total": len(branches),
            "branches": Jsonb([b.plan() for b in branches]), "lease": lease_seconds},
            many=None)

    async def get_branch(self, workflow_id: str, version: int, idx: int) -> Branch | None:
        row = await self._fetch("load_branch", "get_branch",
                                {"id": workflow_id, "version": version, "idx": idx})
        return _planned_branch(idx, row) if row else None

    async def load_branch(self, workflow_id: str, version: int, idx: int
                          ) -> tuple[WorkflowRecord | None, Branch | None]:
        row = await self._fetch("load_workflow", "get_workflow_with_branch",
                                {"id": _uuid(workflow_id), "version": version, "idx": idx})
        if row is None:
            return None, None
        branch = row[_RECORD_COLUMNS:]
        return row_to_record(row), (_planned_branch(idx, branch)
                                    if branch[0] is not None else None)

    async def finish_branch(self, workflow_id: str, version: int, idx: int, *, status: str,
                            result: Any, error: dict[str, Any] | None, attempt: int,
                            duration_ms: float | None) -> int | None:
        row = await self._fetch("finish_branch", "finish_branch", {
            "id": workflow_id, "version": version, "idx": idx, "status": status,
            "result": Jsonb(result) if result is not None else None,
            "error": Jsonb(error) if error is not None else None,
            "attempt": attempt, "duration_ms": duration_ms})
        return int(row[0]) if row else None

    async def retry_branch(self, workflow_id: str, version: int, idx: int, *, attempt: int,
                           error: dict[str, Any], delay: float) -> bool:
        row = await self._fetch("retry_branch", "retry_branch", {
            "id": workflow_id, "version": version, "idx": idx, "attempt": attempt,
            "error": Jsonb(error), "delay": delay})
        return row is not None

    async def lose_branch(self, workflow_id: str, version: int, idx: int, *,
                          error: dict[str, Any], lease_seconds: float) -> tuple[int, int] | None:
        row = await self._fetch("lose_branch", "lose_branch", {
            "id": workflow_id, "version": version, "idx": idx, "error": Jsonb(error),
            "lease": lease_seconds})
        return (int(row[0]), int(row[1])) if row else None

    async def list_branches(self, workflow_id: str, version: int) -> list[Branch]:
        rows = await self._fetch("load_branches", "list_branches",
                                 {"id": workflow_id, "version": version}, many=True)
        return [Branch(idx, name, status, attempt, result=result, error=error,
                       duration_ms=duration_ms)
                for idx, name, status, attempt, result, error, duration_ms in rows]

    async def close_fanout(self, workflow_id: str, version: int) -> None:
        await self._fetch("close_fanout", "close_fanout",
                          {"id": workflow_id, "version": version}, many=None)

    # -- CRON_SCHEDULE schedules ----------------------------------------------------------

    async def upsert_schedule(self, schedule: ScheduleSpec | Mapping[str, Any]) -> bool:
        spec = ScheduleSpec.of(schedule)
        row = await self._fetch("save_schedule", "upsert_schedule", {
            "name": spec.name, "workflow_type": spec.workflow_type,
            "cron_expression": spec.cron_expression, "initial_data": Jsonb(spec.initial_data),
            "next_run_at": spec.next_run_at, "created_by": spec.created_by})
        return bool(row[0])

    async def list_schedules(self) -> list[Schedule]:
        rows = await self._fetch("list_schedules", "list_schedules", {}, many=True)
        return [_schedule(r) for r in rows]

    async def delete_schedule(self, name: str) -> bool:
        return await self._fetch("delete_schedule", "delete_schedule", {"name": name}) is not None

    async def delete_schedules_created_by(self, workflow_id: str) -> list[str]:
        rows = await self._fetch("delete_schedules", "delete_schedules_created_by",
                                 {"id": workflow_id}, many=True)
        return sorted(r[0] for r in rows)

    async def due_schedules(self, limit: int = 50,
                            workflow_types: list[str] | None = None) -> list[Schedule]:
        rows = await self._fetch("due_schedules", "due_schedules",
                                 {"limit": limit, "types": workflow_types}, many=True)
        return [_schedule(r) for r in rows]

    async def advance_schedule(self, name: str, tick: Any, next_run_at: Any,
                               workflow_id: str | None, fired: Any) -> bool:
        row = await self._fetch("advance_schedule", "advance_schedule", {
            "name": name, "tick": tick, "next_run_at": next_run_at,
            "workflow_id": workflow_id, "fired": fired})
        return row is not None

    async def record_dead_letter(self, task: str | None, workflow_id: str | None, reason: str,
                                 payload: Any) -> None:
        task, workflow_id, reason, payload = dead_letter_values(task, workflow_id, reason,
                                                                payload)
        await self._fetch("dead_letter", "insert_dead_letter", {
            "task": task, "workflow_id": workflow_id, "reason": reason,
            "payload": Jsonb(payload)}, many=None)

    async def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        rows = await self._fetch("dead_letters", "list_dead_letters", {"limit": limit}, many=True)
        return [DeadLetter(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def purge(self, before: dt.datetime, *, batch: int = 1000,
                    dry_run: bool = False) -> tuple[int, int]:
        params = {"before": before, "batch": batch, "ended": ended_statuses()}
        if dry_run:
            row = await self._fetch("purge", "count_purgeable", params)
            return int(row[0]), int(row[1])
        totals = [0, 0]
        for i, name in enumerate(("purge_workflows", "purge_dead_letters")):
            while True:
                rows = await self._fetch("purge", name, params, many=True)
                totals[i] += len(rows)
                if len(rows) < batch:
                    break
        return totals[0], totals[1]

    async def beat(self, name: str, holding: list[Held], lease_seconds: float,
                   messages: Sequence[HeldMessage] = ()) -> None:
        await self._fetch("worker_beat", "worker_beat", {
            "name": name, "holding": Jsonb([list(h) for h in holding]),
            "messages": Jsonb(list(messages)), "lease": lease_seconds}, many=None)

    async def reap_workers(self, silent_for: float, window: float,
                           retake: float = 30.0) -> Reaped:
        row = await self._fetch("reap_workers", "reap_workers",
                                {"silent": silent_for, "window": window, "retake": retake})
        if row is None:
            return Reaped()
        return Reaped(list(row[0]), int(row[1]), list(row[2]))

    async def forget_worker(self, name: str) -> None:
        await self._fetch("forget_worker", "forget_worker", {"name": name}, many=None)

    async def due_unaccounted(self, queued: list[Held]) -> int:
        row = await self._fetch("due_unaccounted", "due_unaccounted",
                                {"queued": Jsonb([list(q) for q in queued])})
        return int(row[0]) if row else 0

    async def note_broker_epoch(self, broker: str, epoch: str) -> tuple[bool, int]:
        row = await self._fetch("note_broker_epoch", "note_broker_epoch",
                                {"broker": broker, "epoch": epoch})
        return (bool(row[0]), int(row[1])) if row else (False, 0)

    async def save_definition(self, fingerprint: str, workflow_type: str,
                              workflow_version: str, snapshot: dict[str, Any]) -> None:
        await self._fetch("save_definition", "save_definition", {
            "fingerprint": fingerprint, "workflow_type": workflow_type,
            "workflow_version": workflow_version, "snapshot": Jsonb(snapshot)}, many=None)

    async def load_definition(self, fingerprint: str) -> dict[str, Any] | None:
        row = await self._fetch("load_definition", "load_definition",
                                {"fingerprint": fingerprint})
        return None if row is None else dict(row[0])

    async def count_by_status(self) -> dict[str, int]:
        rows = await self._fetch("count_by_status", "count_by_status", {}, many=True)
        return {r[0]: int(r[1]) for r in rows}

    # -- the server's reads (ReadStore) ---------------------------------------------------

    async def search_workflows(self, search: WorkflowSearch) -> list[WorkflowRecord]:
        """Workflows matching ``search``, newest first (``created_at``, then ``id``)."""
        filters, params = search_filters(search)
        query = psql.SQL(sql.query("search_workflows")).format(
            filters=psql.SQL(" AND ".join(filters) or "TRUE"))
        started = time.perf_counter()
        try:
            async with self._connection() as conn:
                cur = await conn.execute(query, params)
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise self._translate("search_workflows", exc) from exc
        finally:
            for observe in QUERY_OBSERVERS:
                observe("search_workflows", time.perf_counter() - started)
        return [row_to_record(r) for r in rows]

    async def list_workers(self, silent_for: float) -> list[WorkerRow]:
        """Workers not reaped, by name; ``alive``: seen within ``silent_for`` seconds."""
        rows = await self._fetch("list_workers", "list_workers", {"silent": silent_for},
                                 many=True)
        return [WorkerRow(r[0], r[1], r[2], int(r[3]), bool(r[4])) for r in rows]

    async def activity_per_minute(self, minutes: int) -> list[tuple[dt.datetime, int, int]]:
        """``(minute, started, ended)`` for each of the last ``minutes`` minutes."""
        rows = await self._fetch("activity", "activity_per_minute", {"minutes": minutes},
                                 many=True)
        return [(r[0], int(r[1]), int(r[2])) for r in rows]

    async def step_durations(self, workflow_type: str) -> list[StepStats]:
        rows = await self._fetch("step_durations", "step_durations",
                                 {"workflow_type": workflow_type}, many=True)
        return [StepStats(r[0], int(r[1]), r[2], r[3], r[4], r[5]) for r in rows]


class BlockingPostgresPersistenceProvider(PostgresPersistenceProvider):
    """The same store on psycopg's synchronous pool: its coroutines never yield.

    For processes that run one step at a time on their own event loop (Celery's prefork
    and solo pools), where nothing else could use the loop meanwhile: a query costs about
    half the CPU of the asyncio path. Never use it where other coroutines share the loop.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sync_pool: ConnectionPool | None = None
        self._pinned: psycopg.Connection | None = None

    async def initialize(self) -> None:
        if self._sync_pool is not None:
            return
        check = ConnectionPool.check_connection if self.check_connections else None
        pool = ConnectionPool(self.db_url, configure=configure_json, check=check,
                              **self._pool_kwargs())
        try:
            pool.open(wait=True, timeout=max(self.pool_command_timeout, 5.0))
        except Exception as exc:
            pool.close()
            raise self._unreachable(exc) from exc
        self._sync_pool = pool

    async def close(self) -> None:
        if self._sync_pool is not None:
            self._sync_pool.close()
            self._sync_pool = None

    def pool_stats(self) -> dict[str, int]:
        return dict(self._sync_pool.get_stats()) if self._sync_pool else {}

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Run the queries of one step on one connection (one pool checkout, not two)."""
        if self._pinned is not None:
            yield
            return
        checked_out = False
        try:
            with self._checkout() as conn:
                checked_out = True
                self._pinned = conn
                try:
                    yield
                finally:
                    self._pinned = None
        except psycopg.Error as exc:
            # Only the checkout is translated here: the step's own queries went through
            # _fetch, and whatever else the step raised is not the store's to change.
            if checked_out:
                raise
            raise self._translate("a step's connection checkout", exc) from exc

    @contextmanager
    def _checkout(self) -> Iterator[psycopg.Connection]:
        if self._sync_pool is None:
            raise RuvonError("BlockingPostgresPersistenceProvider is not initialized")
        with self._sync_pool.connection() as conn:
            yield conn
            uses = self._uses.get(id(conn), 0) + 1
            if uses >= self.pool_max_queries:
                self._uses.pop(id(conn), None)
                conn.close()
            else:
                self._uses[id(conn)] = uses

    async def _query(self, query: str, params: dict[str, Any], many: bool | None) -> Any:
        if self._pinned is not None:
            return _run(self._pinned, query, params, many)
        with self._checkout() as conn:
            return _run(conn, query, params, many)


if TYPE_CHECKING:
    from .base import PersistenceProvider

    _conforms: PersistenceProvider = PostgresPersistenceProvider("")
    _blocking_conforms: PersistenceProvider = BlockingPostgresPersistenceProvider("")


def _run(conn: psycopg.Connection, query: str, params: dict[str, Any], many: bool | None) -> Any:
    cur = conn.execute(query, params, prepare=True)
    return None if many is None else (cur.fetchall() if many else cur.fetchone())


def _planned_branch(idx: int, row: Sequence[Any]) -> Branch:
    name, item, status, attempt = row
    return Branch(idx, name, status, attempt, item=item)


def _uuid(value: str) -> str:
    """Reject ids that are not UUIDs before they reach the database."""
    import uuid

    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        from ..errors import WorkflowNotFound

        raise WorkflowNotFound(str(value)) from None


def _redact(url: str) -> str:
    """Hide the password of a connection URL in messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable DATABASE_URL>"
    host = info.get("host", "localhost")
    port = info.get("port", "5432")
    return f"{host}:{port}/{info.get('dbname', '')}"
