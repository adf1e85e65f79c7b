"""SQLite store: the stdlib ``sqlite3`` module, the same rules as PostgreSQL
(``tests/contract`` checks both), no server.

For in-process runs that should survive the process (``SQLitePersistenceProvider(
"workflows.db")``) and for tests (``":memory:"``, the default: one database per provider,
gone when it closes). Ruvon's development default, with Ruvon's signature.

**One thread per provider.** Each provider owns one connection and one worker thread
(a single-thread executor): every call runs there, off the event loop, one after the
other. A connection is then only ever used by the thread that opened it, a ``:memory:``
database (which lives and dies with its one connection) is shared by every coroutine of
the provider, and calls of one provider need no lock: they queue. Parallelism would buy
nothing, since SQLite lets one writer in at a time anyway. Several providers (threads,
processes) on one file each have their own connection and thread.

**Transactions.** Every write is one ``BEGIN IMMEDIATE`` transaction: it takes the
database's write lock before reading anything, so writers serialize (waiting up to
``timeout`` seconds for each other) and never fail half-way on a lock upgrade. Where
PostgreSQL's query is one statement, the same steps run inside that transaction: a
compare-and-set on ``version`` with its history rows; the sweep's claims (SQLite has no
``SKIP LOCKED``: a second sweeper waits for the lock and then no longer sees the rows the
first leased); a branch's outcome with the fan-out's countdown. Reads are single
statements. A file database runs in WAL mode, so reads go on while one connection
writes; ``synchronous`` stays at SQLite's default (FULL): a commit is durable.

**Values.** Ids are canonical UUID text (as PostgreSQL's ``uuid``: a non-UUID id is
refused on insert and not found on read); JSON values are TEXT written by the project's
codec (:mod:`ruvon_workers.utils.serialization`); every timestamp is REAL unix seconds
(UTC), read back as timezone-aware ``datetime`` (to the microsecond until 2106; a
schedule's tick read back compares equal to the stored one always). The transaction's
clock is read once, after its write lock was taken, as PostgreSQL's ``now()``. Each
``*_txn`` method is one transaction, run on the provider's thread.

**Errors.** This module is the only one that sees ``sqlite3``'s errors: each leaves it as
:class:`~ruvon_workers.errors.UnstorableValue` (a value SQLite cannot hold: retrying
cannot help) or :class:`~ruvon_workers.errors.DatabaseError` (a lock held past
``timeout``, a missing schema, a file that cannot be opened).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ..engine.records import Branch, HistoryEntry, RecordUpdate, Status, WorkflowRecord
from ..engine.runtime import Runtime
from ..errors import (
    DatabaseError,
    RuvonError,
    StaleStateError,
    UnstorableValue,
    WorkflowNotFound,
)
from ..utils.serialization import deserialize, serialize
from . import sql
from .base import (
    DueStep,
    Held,
    HeldMessage,
    Reaped,
    dead_letter_values,
    ended_statuses,
    same_workflow,
    step_stats,
)
from .rows import DeadLetter, Schedule, ScheduleSpec, StepStats

T = TypeVar("T")
Row = tuple[Any, ...]

_RECORD_COLUMNS = 14


class SQLitePersistenceProvider:
    """Workflow state in a SQLite file (or in memory); every write is a compare-and-set
    on ``version``, as on PostgreSQL.

    ``timeout``: seconds a write waits for another connection's write lock before giving
    up with :class:`DatabaseError`. ``check_same_thread`` is passed to ``sqlite3`` (the
    provider's connection is only ever used by its own thread either way). With
    ``auto_init`` (the default) :meth:`initialize` creates the tables that are missing.
    """

    def __init__(self, db_path: str | os.PathLike[str] = ":memory:", timeout: float = 5.0,
                 check_same_thread: bool = False, auto_init: bool = True):
        self.db_path = os.fspath(db_path)
        self.timeout = timeout
        self.check_same_thread = check_same_thread
        self.auto_init = auto_init
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    @property
    def in_memory(self) -> bool:
        """Whether the database lives only as long as this provider's connection."""
        return self.db_path in (":memory:", "") or "mode=memory" in self.db_path

    # -- the connection and its thread ----------------------------------------------------

    async def initialize(self) -> None:
        """Open the connection (on the provider's own thread) and, with ``auto_init``,
        create the schema."""
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ruvon-sqlite")
        self._executor = executor
        try:
            await self._run("initialize", self._open)
        except BaseException:
            self._executor = None
            executor.shutdown(wait=False)
            raise

    async def close(self) -> None:
        """Close the connection (a ``:memory:`` database is gone then) and end the thread;
        :meth:`initialize` opens it again."""
        executor = self._executor
        if executor is None:
            return
        try:
            await self._run("close", self._close_connection)
        finally:
            self._executor = None
            executor.shutdown(wait=False)

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Nothing to pin: a provider has one connection."""
        yield

    def _open(self) -> None:
        conn = sqlite3.connect(self.db_path, timeout=self.timeout, isolation_level=None,
                               check_same_thread=self.check_same_thread,
                               uri=self.db_path.startswith("file:"))
        try:
            if not self.in_memory:
                conn.execute("PRAGMA journal_mode = WAL")
            if self.auto_init:
                _scope_keys(conn)  # foreign keys still off, as the rebuild needs
            conn.execute("PRAGMA foreign_keys = ON")
            if self.auto_init:
                conn.executescript(f"BEGIN IMMEDIATE;\n{sql.sqlite_schema()}\nCOMMIT;")
                _add_missing_columns(conn)
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            conn.close()
            raise
        self._conn = conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuvonError("SQLitePersistenceProvider is not initialized: "
                             "call `await persistence.initialize()` first")
        return self._conn

    async def _run(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the provider's thread; its ``sqlite3`` errors come back as
        ours, naming ``operation``."""
        executor = self._executor
        if executor is None:
            raise RuvonError("SQLitePersistenceProvider is not initialized: "
                             "call `await persistence.initialize()` first")
        try:
            future = executor.submit(self._guarded, operation, fn, args)
        except RuntimeError:  # closed meanwhile
            raise RuvonError("SQLitePersistenceProvider is closed: call "
                             "`await persistence.initialize()` before using it again") from None
        return await asyncio.wrap_future(future)

    def _guarded(self, operation: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise self._translate(operation, exc) from exc
        except (OverflowError, UnicodeEncodeError) as exc:  # binding a value SQLite cannot hold
            raise UnstorableValue(operation, str(exc), database="SQLite") from exc

    def _translate(self, operation: str, exc: sqlite3.Error) -> RuvonError:
        """``sqlite3``'s error as ours: a value SQLite refuses is :class:`UnstorableValue`
        (the same write cannot succeed), anything else a :class:`DatabaseError` that says
        what to do."""
        detail = str(exc).strip() or type(exc).__name__
        code = getattr(exc, "sqlite_errorname", "") or ""
        if isinstance(exc, sqlite3.DataError) or code == "SQLITE_TOOBIG":
            return UnstorableValue(operation, detail, database="SQLite")
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in detail:
            return DatabaseError(
                f"SQLite database {self.db_path} stayed locked during {operation}: {detail}. "
                f"Another connection held its write lock longer than timeout "
                f"({self.timeout:g}s): raise the timeout, or write from fewer processes.")
        if code.startswith("SQLITE_CANTOPEN"):
            return DatabaseError(f"Cannot open the SQLite database {self.db_path} during "
                                 f"{operation}: {detail}. Check that its directory exists and "
                                 "is writable.")
        if "no such table" in detail or "no such column" in detail:
            return DatabaseError(f"SQLite error during {operation}: {detail}. The schema of "
                                 f"{self.db_path} is missing or older than this version: open "
                                 "it with SQLitePersistenceProvider(..., auto_init=True).")
        return DatabaseError(f"SQLite error during {operation}: {detail}.")

    # The helpers below run on the provider's thread.

    def _all(self, name: str, params: Mapping[str, Any]) -> list[Row]:
        return self._db.execute(sql.sqlite_query(name), params).fetchall()

    def _one(self, name: str, params: Mapping[str, Any]) -> Row | None:
        rows = self._all(name, params)  # every row, so the statement is finished
        return rows[0] if rows else None

    @contextmanager
    def _write(self) -> Iterator[float]:
        """One write transaction; yields its clock (unix seconds), read once the write
        lock is held. Anything raised inside rolls it back."""
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield time.time()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- workflows ------------------------------------------------------------------------

    async def create_workflow(self, record: WorkflowRecord,
                              due_in: float | None = None) -> tuple[WorkflowRecord, bool]:
        params = {
            "id": _new_id(record.id, "create_workflow"),
            "workflow_type": record.workflow_type,
            "workflow_version": record.workflow_version,
            "status": str(record.status),
            "current_step": record.current_step,
            "state": serialize(record.state),
            "runtime": serialize(record.runtime.to_dict()),
            "idempotency_key": record.idempotency_key,
            "parent_id": (None if record.parent_id is None
                          else _new_id(record.parent_id, "create_workflow")),
            "due_in": due_in,
        }
        return await self._run("create_workflow", self._create_txn, record, params)

    def _create_txn(self, record: WorkflowRecord, params: dict[str, Any]
                ) -> tuple[WorkflowRecord, bool]:
        with self._write() as now:
            params["now"] = now
            row = self._one("insert_workflow", params)
            if row is not None:
                self._all("insert_created", params)
                record.version, record.created_at, record.updated_at = (
                    row[0], _time(row[1]), _time(row[2]))
                return record, True
            existing = None
            if record.idempotency_key is not None:
                existing = self._one("get_workflow_by_key",
                                     {"workflow_type": record.workflow_type,
                                      "idempotency_key": record.idempotency_key})
            if existing is None:
                existing = self._one("get_workflow", params)
        if existing is None:  # a conflict on neither: cannot be, the lock was held
            raise DatabaseError(f"workflow {record.id} conflicted with no stored workflow")
        return same_workflow(record, _record(existing)), False

    async def load_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        row = await self._run("load_workflow", self._one, "get_workflow",
                              {"id": _stored_id(workflow_id)})
        return _record(row) if row else None

    async def apply(self, workflow_id: str, expected_version: int, update: RecordUpdate,
                    history: list[HistoryEntry]) -> int:
        params = {
            "id": _id(workflow_id),
            "expected_version": expected_version,
            "status": str(update.status),
            "current_step": update.current_step,
            "state": serialize(update.state),
            "runtime": serialize(update.runtime.to_dict()),
            "error": _json(update.error),
            "due_in": update.due_in,
            "terminal": update.terminal,
        }
        rows = [{"id": params["id"], **row, "status": str(row["status"]),
                 "error": _json(row["error"]), "detail": _json(row["detail"])}
                for row in (h.as_row() for h in history)]
        return await self._run("save_workflow", self._apply_txn, str(workflow_id), params, rows)

    def _apply_txn(self, workflow_id: str, params: dict[str, Any],
               history: list[dict[str, Any]]) -> int:
        with self._write() as now:
            params["now"] = now
            row = self._one("apply_transition", params)
            if row is None:
                current = self._one("current_version", params)
                raise StaleStateError(workflow_id, params["expected_version"],
                                      current[0] if current else None)
            version = int(row[0])
            if history:
                self._db.executemany(sql.sqlite_query("insert_history"),
                                     [{**h, "version": version, "now": now} for h in history])
        return version

    async def history(self, workflow_id: str) -> list[HistoryEntry]:
        rows = await self._run("history", self._all, "step_history",
                               {"id": _stored_id(workflow_id)})
        return [HistoryEntry(step=r[0], status=r[1], attempt=r[2], version=r[3],
                             duration_ms=r[4], error=_value(r[5]), detail=_value(r[6]),
                             created_at=_time(r[7]))
                for r in rows]

    async def list_workflows(self, *, status: str | None = None,
                             workflow_type: str | None = None,
                             limit: int = 50) -> list[WorkflowRecord]:
        rows = await self._run("list_workflows", self._all, "list_workflows", {
            "status": None if status is None else str(status),
            "workflow_type": workflow_type, "limit": limit})
        return [_record(r) for r in rows]

    async def claim_due(self, *, lease_seconds: float, limit: int = 100,
                        workflow_types: list[str] | None = None) -> list[DueStep]:
        params = {"lease": lease_seconds, "limit": limit,
                  "types": None if workflow_types is None else serialize(list(workflow_types))}
        return await self._run("claim_due", self._claim_due_txn, params)

    def _claim_due_txn(self, params: dict[str, Any]) -> list[DueStep]:
        with self._write() as now:
            params["now"] = now
            due = [DueStep(r[0], r[1], r[2], r[3]) for r in self._all("claim_due", params)]
            self._all("abandon_stale_branches", params)
            branches = self._all("due_branches", params)
            self._db.executemany(sql.sqlite_query("lease_branch"), [
                {"id": r[0], "version": r[3], "idx": r[4], "lease": params["lease"],
                 "now": now} for r in branches])
        return due + [DueStep(r[0], r[1], r[2], r[3], branch=r[4]) for r in branches]

    async def extend_due(self, item: DueStep, lease_seconds: float) -> None:
        params = {"id": _id(item.workflow_id), "version": item.version, "idx": item.branch,
                  "lease": lease_seconds}
        name = "extend_due" if item.branch is None else "extend_branch_due"
        await self._run("claim_due", self._statement_txn, name, params)

    def _upsert_schedule_txn(self, params: dict[str, Any]) -> bool:
        with self._write() as now:
            new = self._one("schedule_exists", params) is None
            self._all("upsert_schedule", {**params, "now": now})
        return new

    def _statement_txn(self, name: str, params: dict[str, Any]) -> list[Row]:
        """One statement in a write transaction of its own; its rows."""
        with self._write() as now:
            return self._all(name, {**params, "now": now})

    # -- PARALLEL fan-outs ----------------------------------------------------------------

    async def create_fanout(self, workflow_id: str, version: int, step: str,
                            branches: list[Branch], lease_seconds: float) -> None:
        params = {"id": _id(workflow_id), "version": version, "step": step,
                  "total": len(branches), "lease": lease_seconds}
        planned = [{"idx": b.idx, "name": b.name, "item": _json(b.item)} for b in branches]
        await self._run("create_fanout", self._create_fanout_txn, params, planned)

    def _create_fanout_txn(self, params: dict[str, Any], branches: list[dict[str, Any]]) -> None:
        with self._write() as now:
            params["now"] = now
            if self._one("insert_fanout", params) is not None:
                self._db.executemany(sql.sqlite_query("insert_branch"),
                                     [{**params, **b} for b in branches])

    async def get_branch(self, workflow_id: str, version: int, idx: int) -> Branch | None:
        row = await self._run("load_branch", self._one, "get_branch",
                              {"id": _id(workflow_id), "version": version, "idx": idx})
        return _planned_branch(idx, row) if row else None

    async def load_branch(self, workflow_id: str, version: int, idx: int
                          ) -> tuple[WorkflowRecord | None, Branch | None]:
        row = await self._run("load_workflow", self._one, "get_workflow_with_branch",
                              {"id": _stored_id(workflow_id), "version": version, "idx": idx})
        if row is None:
            return None, None
        branch = row[_RECORD_COLUMNS:]
        return _record(row), (_planned_branch(idx, branch) if branch[0] is not None else None)

    async def finish_branch(self, workflow_id: str, version: int, idx: int, *, status: str,
                            result: Any, error: dict[str, Any] | None, attempt: int,
                            duration_ms: float | None) -> int | None:
        params = {"id": _id(workflow_id), "version": version, "idx": idx,
                  "status": str(status), "result": _json(result), "error": _json(error),
                  "attempt": attempt, "duration_ms": duration_ms}
        return await self._run("finish_branch", self._finish_branch_txn, params)

    def _finish_branch_txn(self, params: dict[str, Any]) -> int | None:
        with self._write() as now:
            params["now"] = now
            if self._one("finish_branch", params) is None:
                return None  # already finished (or no such branch): nothing changed
            row = self._one("count_down", params)
        return int(row[0]) if row else None

    async def retry_branch(self, workflow_id: str, version: int, idx: int, *, attempt: int,
                           error: dict[str, Any], delay: float) -> bool:
        rows = await self._run("retry_branch", self._statement_txn, "retry_branch", {
            "id": _id(workflow_id), "version": version, "idx": idx, "attempt": attempt,
            "error": _json(error), "delay": delay})
        return bool(rows)

    async def lose_branch(self, workflow_id: str, version: int, idx: int, *,
                          error: dict[str, Any], lease_seconds: float) -> tuple[int, int] | None:
        rows = await self._run("lose_branch", self._statement_txn, "lose_branch", {
            "id": _id(workflow_id), "version": version, "idx": idx, "error": _json(error),
            "lease": lease_seconds})
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    async def list_branches(self, workflow_id: str, version: int) -> list[Branch]:
        rows = await self._run("load_branches", self._all, "list_branches",
                               {"id": _id(workflow_id), "version": version})
        return [Branch(idx, name, status, attempt, result=_value(result), error=_value(error),
                       duration_ms=duration_ms)
                for idx, name, status, attempt, result, error, duration_ms in rows]

    async def close_fanout(self, workflow_id: str, version: int) -> None:
        await self._run("close_fanout", self._statement_txn, "close_fanout",
                        {"id": _id(workflow_id), "version": version})

    # -- CRON_SCHEDULE schedules ----------------------------------------------------------

    async def upsert_schedule(self, schedule: ScheduleSpec | Mapping[str, Any]) -> bool:
        spec = ScheduleSpec.of(schedule)
        return await self._run("save_schedule", self._upsert_schedule_txn, {
            "name": spec.name, "workflow_type": spec.workflow_type,
            "cron_expression": spec.cron_expression,
            "initial_data": serialize(spec.initial_data),
            "next_run_at": _seconds(spec.next_run_at),
            "created_by": None if spec.created_by is None else _id(spec.created_by)})

    async def list_schedules(self) -> list[Schedule]:
        rows = await self._run("list_schedules", self._all, "list_schedules", {})
        return [_schedule(r) for r in rows]

    async def delete_schedule(self, name: str) -> bool:
        return bool(await self._run("delete_schedule", self._statement_txn, "delete_schedule",
                                    {"name": name}))

    async def delete_schedules_created_by(self, workflow_id: str) -> list[str]:
        rows = await self._run("delete_schedules", self._statement_txn,
                               "delete_schedules_created_by", {"id": _id(workflow_id)})
        return sorted(r[0] for r in rows)

    async def due_schedules(self, limit: int = 50,
                            workflow_types: list[str] | None = None) -> list[Schedule]:
        rows = await self._run("due_schedules", self._all, "due_schedules", {
            "limit": limit, "now": time.time(),
            "types": None if workflow_types is None else serialize(list(workflow_types))})
        return [_schedule(r) for r in rows]

    async def advance_schedule(self, name: str, tick: Any, next_run_at: Any,
                               workflow_id: str | None, fired: Any) -> bool:
        rows = await self._run("advance_schedule", self._statement_txn, "advance_schedule", {
            "name": name, "tick": _seconds(tick), "next_run_at": _seconds(next_run_at),
            "workflow_id": None if workflow_id is None else _id(workflow_id),
            "fired": None if fired is None else _seconds(fired)})
        return bool(rows)

    # -- dead letters and statistics ------------------------------------------------------

    async def record_dead_letter(self, task: str | None, workflow_id: str | None, reason: str,
                                 payload: Any) -> None:
        task, workflow_id, reason, payload = dead_letter_values(task, workflow_id, reason,
                                                                payload)
        await self._run("dead_letter", self._statement_txn, "insert_dead_letter", {
            "task": task, "workflow_id": workflow_id, "reason": reason,
            "payload": _json(payload)})

    async def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        rows = await self._run("dead_letters", self._all, "list_dead_letters", {"limit": limit})
        return [DeadLetter(int(r[0]), r[1], r[2], r[3], _value(r[4]), _required_time(r[5]))
                for r in rows]

    # -- retention ----------------------------------------------------------------------

    async def purge(self, before: dt.datetime, *, batch: int = 1000,
                    dry_run: bool = False) -> tuple[int, int]:
        params = {"before": _seconds(before), "batch": batch,
                  "ended": serialize(ended_statuses())}
        if dry_run:
            row = await self._run("purge", self._one, "count_purgeable", params)
            return (int(row[0]), int(row[1])) if row else (0, 0)
        totals = [0, 0]
        for i, name in enumerate(("purge_workflows", "purge_dead_letters")):
            while True:
                done = await self._run("purge", self._count_txn, name, params)
                totals[i] += done
                if done < batch:
                    break
        return totals[0], totals[1]

    def _count_txn(self, name: str, params: dict[str, Any]) -> int:
        with self._write():
            return int(self._db.execute(sql.sqlite_query(name), params).rowcount)

    # -- workers ------------------------------------------------------------------------

    async def beat(self, name: str, holding: list[Held], lease_seconds: float,
                   messages: Sequence[HeldMessage] = ()) -> None:
        await self._run("worker_beat", self._beat_txn, name, holding, lease_seconds,
                        list(messages))

    def _beat_txn(self, name: str, holding: list[Held], lease: float,
                  messages: list[HeldMessage]) -> None:
        with self._write() as now:
            self._all("worker_beat", {"name": name, "now": now,
                                      "holding": serialize([list(h) for h in holding]),
                                      "messages": serialize(messages)})
            for wid, version, idx in holding:
                params = {"id": _id(wid), "version": version, "idx": idx, "now": now,
                          "lease": lease}
                self._all("renew_step" if idx is None else "renew_branch", params)

    async def reap_workers(self, silent_for: float, window: float,
                           retake: float = 30.0) -> Reaped:
        result: Reaped = await self._run("reap_workers", self._reap_txn, silent_for,
                                         window, retake)
        return result

    def _reap_txn(self, silent: float, window: float, retake: float) -> Reaped:
        with self._write() as now:
            gone = self._all("gone_workers", {"now": now, "silent": silent,
                                              "retake": retake})
            if not gone:
                return Reaped()
            made = 0
            for _, _, holding, _ in gone:
                for wid, version, idx in _value(holding):
                    params = {"id": _id(wid), "version": version, "idx": idx, "now": now}
                    cursor = self._db.execute(sql.sqlite_query(
                        "due_held_step" if idx is None else "due_held_branch"), params)
                    made += cursor.rowcount
            cursor = self._db.execute(sql.sqlite_query("due_recent_steps"), {
                "now": now, "first": min(r[1] for r in gone) - window,
                "last": max(r[1] for r in gone) + silent})
            made += cursor.rowcount
        return Reaped([r[0] for r in gone], made,
                      [m for r in gone for m in _value(r[3])])

    async def forget_worker(self, name: str) -> None:
        await self._run("forget_worker", self._statement_txn, "forget_worker", {"name": name})

    async def due_unaccounted(self, queued: list[Held]) -> int:
        made: int = await self._run("due_unaccounted", self._unaccounted_txn, queued)
        return made

    def _unaccounted_txn(self, queued: list[Held]) -> int:
        with self._write() as now:
            return self._due_unless_accounted(now, [Status.ACTIVE], queued)

    def _due_unless_accounted(self, now: float, statuses: list[str],
                              queued: list[Held]) -> int:
        """Make due every row in ``statuses`` and PENDING branch that no live worker
        holds and that is not in ``queued`` (in a write transaction); how many."""
        held = [[_id(h[0]), *h[1:]] for row in self._all("live_holdings", {})
                for h in _value(row[0])]
        params = {"now": now, "held": serialize(held), "statuses": serialize(statuses),
                  "queued": serialize([[_id(q[0]), q[1], q[2]] for q in queued])}
        return sum(self._db.execute(sql.sqlite_query(name), params).rowcount
                   for name in ("due_unaccounted_steps", "due_unaccounted_branches"))

    async def note_broker_epoch(self, broker: str, epoch: str) -> tuple[bool, int]:
        result: tuple[bool, int] = await self._run("note_broker_epoch", self._epoch_txn,
                                                   broker, epoch)
        return result

    def _epoch_txn(self, broker: str, epoch: str) -> tuple[bool, int]:
        with self._write() as now:
            prior = self._one("note_broker_epoch", {"broker": broker})
            if prior is not None and prior[0] == epoch:
                return False, 0
            self._all("save_broker_epoch", {"broker": broker, "epoch": epoch, "now": now})
            if prior is None:
                return False, 0
            # Waiting on a child or on branches too: their wake-ups may have been queued.
            return True, self._due_unless_accounted(now, sorted(_WAKE_STATUSES), [])

    async def save_definition(self, fingerprint: str, workflow_type: str,
                              workflow_version: str, snapshot: dict[str, Any]) -> None:
        await self._run("save_definition", self._statement_txn, "save_definition", {
            "fingerprint": fingerprint, "workflow_type": workflow_type,
            "workflow_version": workflow_version, "snapshot": _json(snapshot)})

    async def load_definition(self, fingerprint: str) -> dict[str, Any] | None:
        row = await self._run("load_definition", self._one, "load_definition",
                              {"fingerprint": fingerprint})
        return None if row is None else dict(_value(row[0]))

    async def count_by_status(self) -> dict[str, int]:
        rows = await self._run("count_by_status", self._all, "count_by_status", {})
        return {r[0]: int(r[1]) for r in rows}

    async def step_durations(self, workflow_type: str) -> list[StepStats]:
        rows = await self._run("step_durations", self._all, "completed_durations",
                               {"workflow_type": workflow_type})
        return step_stats(rows)


if TYPE_CHECKING:
    from .base import PersistenceProvider

    _conforms: PersistenceProvider = SQLitePersistenceProvider()


# -- values in and out ------------------------------------------------------------------


#: What a broker that lost its messages may have held a message for.
_WAKE_STATUSES = frozenset({Status.ACTIVE, Status.PENDING_ASYNC, Status.PENDING_SUB_WORKFLOW,
                            Status.WAITING_CHILD_HUMAN_INPUT})

#: Columns later versions added to a table an earlier version made: ``ALTER`` adds them
#: when a file is opened (SQLite has no ``ADD COLUMN IF NOT EXISTS``).
_ADDED_COLUMNS = {
    "ruvon_workers": {"messages": "TEXT NOT NULL DEFAULT '[]'", "reaped_at": "REAL"},
}


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for column, kind in columns.items():
            if column not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _id(value: str) -> str:
    """An id as stored: canonical UUID text (what PostgreSQL's ``uuid`` returns); a value
    that is not a UUID is left as it is (it matches nothing)."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value)


def _new_id(value: str, operation: str) -> str:
    """An id to insert: a UUID, as PostgreSQL's ``uuid`` column takes."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise UnstorableValue(operation, f"invalid input syntax for type uuid: {value!r}",
                              database="SQLite") from None


def _stored_id(value: str) -> str:
    """A workflow id to look up; one that is not a UUID is no workflow (as PostgreSQL)."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise WorkflowNotFound(str(value)) from None


def _json(value: Any) -> str | None:
    """A JSON column's text (SQL NULL for ``None``)."""
    return None if value is None else serialize(value)


def _value(text: str | bytes | None) -> Any:
    return None if text is None else deserialize(text)


def _seconds(value: Any) -> float:
    """A timestamp as stored: unix seconds. A naive ``datetime`` is read as UTC (as
    PostgreSQL's ``timestamptz`` reads one in a UTC session); ISO text is parsed."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    return float(value)


def _time(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def _required_time(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _record(row: Sequence[Any]) -> WorkflowRecord:
    return WorkflowRecord(
        id=row[0],
        workflow_type=row[1],
        workflow_version=row[2],
        status=row[3],
        current_step=row[4],
        state=deserialize(row[5]),
        version=row[6],
        runtime=Runtime.from_dict(deserialize(row[7])),
        idempotency_key=row[8],
        parent_id=row[9],
        error=_value(row[10]),
        created_at=_time(row[11]),
        updated_at=_time(row[12]),
        completed_at=_time(row[13]),
    )


def _planned_branch(idx: int, row: Sequence[Any]) -> Branch:
    name, item, status, attempt = row
    return Branch(idx, name, status, attempt, item=_value(item))


def _schedule(row: Row) -> Schedule:
    """A ``ruvon_schedules`` row (``list_schedules``' columns)."""
    return Schedule(name=row[0], workflow_type=row[1], cron_expression=row[2],
                    initial_data=deserialize(row[3]), next_run_at=_required_time(row[4]),
                    last_run_at=_time(row[5]), last_workflow_id=row[6], runs=int(row[7]),
                    created_by=row[8], created_at=_required_time(row[9]))


def _unscoped_keys(conn: sqlite3.Connection) -> bool:
    """Whether ``workflow_executions`` still has a file-wide UNIQUE on its idempotency key
    (a file written before keys were scoped by workflow type)."""
    for _, name, unique, origin, *_ in conn.execute(
            "PRAGMA index_list('workflow_executions')").fetchall():
        if unique and origin == "u":
            columns = [r[2] for r in conn.execute(f"PRAGMA index_info('{name}')")]
            if columns == ["idempotency_key"]:
                return True
    return False


def _scope_keys(conn: sqlite3.Connection) -> None:
    """Upgrade a file from before keys were scoped by workflow type, once (see
    ``sql/sqlite/scoped_keys.sql``). Runs with foreign keys off, which the table's
    rebuild needs; the check is repeated under the write lock, for two openers at once."""
    if not _unscoped_keys(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _unscoped_keys(conn):
            for statement in _statements(sql.sqlite_scoped_keys()):
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """The statements of a script whose statements each end a line with ``;``."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";")]
