"""PostgreSQL-specific behaviour: the in-process engine on it, pool settings, ids.

The rules every store meets (compare-and-set, idempotency, leases, fan-outs, schedules,
dead letters) are in tests/contract, run against PostgreSQL among others."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from ruvon_workers import StaleStateError, WorkflowBuilder
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.persistence import PostgresPersistenceProvider

SYNC = SyncExecutionProvider()
ORDER = {"order_id": "o", "customer_id": "c", "items": [{"sku": "x", "quantity": 1,
                                                         "unit_price": 5}]}


async def test_stale_in_process_workflow_gets_typed_error(builder: WorkflowBuilder,
                                                          pg_persistence) -> None:
    wf = await builder.create_workflow("OrderProcessing", ORDER,
                                       persistence_provider=pg_persistence,
                                       execution_provider=SYNC)
    twin = await builder.load_workflow(wf.id, persistence_provider=pg_persistence,
                                       execution_provider=SYNC)
    await wf.next_step()
    with pytest.raises(StaleStateError):
        await twin.next_step()
    stored = await pg_persistence.load_workflow(wf.id)
    assert stored is not None and stored.version == wf.version
    assert stored.current_step == "Check_Amount"


async def test_history_records_every_transition(builder: WorkflowBuilder, pg_persistence) -> None:
    wf = await builder.create_workflow("OrderProcessing", ORDER,
                                       persistence_provider=pg_persistence,
                                       execution_provider=SYNC)
    while wf.status == "ACTIVE":
        await wf.next_step()
    history = await wf.history()
    assert [h.version for h in history] == list(range(len(history)))
    completed = [h for h in history if h.status == "COMPLETED"]
    assert all(h.duration_ms is not None and h.attempt == 1 for h in completed)


def test_pool_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_POOL_MIN_SIZE", "3")
    monkeypatch.setenv("POSTGRES_POOL_MAX_SIZE", "7")
    monkeypatch.setenv("POSTGRES_POOL_COMMAND_TIMEOUT", "2.5")
    monkeypatch.setenv("POSTGRES_POOL_MAX_QUERIES", "99")
    monkeypatch.setenv("POSTGRES_POOL_MAX_INACTIVE_LIFETIME", "60")
    p = PostgresPersistenceProvider("postgresql://x@127.0.0.1/db")
    assert (p.pool_min_size, p.pool_max_size, p.pool_command_timeout, p.pool_max_queries,
            p.pool_max_inactive_lifetime) == (3, 7, 2.5, 99, 60)
    explicit = PostgresPersistenceProvider("postgresql://x@127.0.0.1/db", pool_min_size=1,
                                           pool_max_size=2)
    assert (explicit.pool_min_size, explicit.pool_max_size) == (1, 2)


async def test_pool_opens_with_its_settings_and_statement_timeout(database_url: str) -> None:
    p = PostgresPersistenceProvider(database_url, pool_min_size=2, pool_max_size=4,
                                    pool_command_timeout=1.5)
    await p.initialize()
    try:
        stats = p.pool_stats()
        assert stats["pool_min"] == 2 and stats["pool_max"] == 4
        async with p.connection() as conn:
            cur = await conn.execute("SHOW statement_timeout")
            row = await cur.fetchone()
            assert row is not None and row[0] == "1500ms"
    finally:
        await p.close()


async def test_unreachable_database_names_the_fix() -> None:
    from ruvon_workers.persistence.postgres import DatabaseError

    p = PostgresPersistenceProvider("postgresql://nobody@127.0.0.1:1/none",
                                    pool_min_size=1, pool_command_timeout=1)
    with pytest.raises(DatabaseError, match="Check DATABASE_URL"):
        await p.initialize()


async def test_a_malformed_id_is_not_found(pg_persistence) -> None:
    from ruvon_workers import WorkflowNotFound

    # (An unknown id loads as None in every store: tests/contract.)
    with pytest.raises(WorkflowNotFound):
        await pg_persistence.load_workflow("not-a-uuid")


# -- driver errors are translated at the store's boundary ----------------------------------

class _Outbox:
    """Stands in for the broker."""

    def step(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("nothing should be sent")


async def test_a_pool_timeout_around_a_step_is_a_database_error(database_url: str) -> None:
    """Its only connection taken, the blocking store (prefork workers) raises DatabaseError
    on entering pinned(), which wraps a whole step: the fleet's step task retries that,
    where psycopg_pool's PoolTimeout made it drop the message."""
    from psycopg_pool import PoolTimeout

    from ruvon_workers.definitions import load_registry
    from ruvon_workers.errors import DatabaseError
    from ruvon_workers.fleet.coordinator import Coordinator
    from ruvon_workers.fleet.settings import FleetSettings
    from ruvon_workers.persistence.postgres import BlockingPostgresPersistenceProvider

    from ..helpers import FLEET_REGISTRY

    store = BlockingPostgresPersistenceProvider(database_url, pool_min_size=1, pool_max_size=1,
                                                pool_timeout=0.3)
    await store.initialize()
    settings = FleetSettings("q", lease_seconds=300, sweep_interval=10, max_countdown=60)
    coordinator = Coordinator(load_registry(FLEET_REGISTRY), store, _Outbox(),  # type: ignore[arg-type]
                              settings)
    unknown = str(uuid.uuid4())

    def enter_pinned() -> None:
        with store.pinned():
            raise AssertionError("pinned() got a connection")

    try:
        assert store._sync_pool is not None
        with store._sync_pool.connection():  # hold the pool's only connection
            with pytest.raises(DatabaseError, match="POSTGRES_POOL_MAX_SIZE") as info:
                await asyncio.to_thread(enter_pinned)
            assert isinstance(info.value.__cause__, PoolTimeout)
            assert "a step's connection checkout" in str(info.value)
            with pytest.raises(DatabaseError, match="POSTGRES_POOL_MAX_SIZE"):
                await coordinator.handle_step(unknown, "Tick", 0)
            with pytest.raises(DatabaseError, match="load_workflow"):
                await store.load_workflow(unknown)
        # Free again: a step gets its connection.
        report = await coordinator.handle_step(unknown, "Tick", 0)
        assert report.applied is False and report.reason == "unknown workflow"
    finally:
        await store.close()


async def test_a_pool_timeout_of_the_async_store_is_a_database_error(database_url: str) -> None:
    from ruvon_workers.errors import DatabaseError

    store = PostgresPersistenceProvider(database_url, pool_min_size=1, pool_max_size=1,
                                        pool_timeout=0.3)
    await store.initialize()
    try:
        async with store.pool.connection():  # hold the pool's only connection
            with pytest.raises(DatabaseError, match="POSTGRES_POOL_MAX_SIZE"):
                async with store.connection():
                    raise AssertionError("connection() got a connection")
            with pytest.raises(DatabaseError, match="No free PostgreSQL connection for "
                                                   "load_workflow"):
                await store.load_workflow(str(uuid.uuid4()))
        async with store.connection() as conn:  # free again
            cur = await conn.execute("SELECT 1")
            assert (await cur.fetchone()) == (1,)
    finally:
        await store.close()


async def test_driver_errors_other_than_data_errors_are_database_errors(
        database_url: str, pg_persistence: PostgresPersistenceProvider) -> None:
    """A missing table (ProgrammingError), a closed pool: DatabaseError naming the fix."""
    from ruvon_workers.errors import DatabaseError

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE workflow_step_history CASCADE")
    with pytest.raises(DatabaseError, match=r"history: .*ruvon-workers db migrate") as info:
        await pg_persistence.history(str(uuid.uuid4()))
    assert isinstance(info.value.__cause__, psycopg.errors.UndefinedTable)

    closed = PostgresPersistenceProvider(database_url, pool_min_size=1, pool_max_size=1)
    await closed.initialize()
    pool = closed.pool
    await pool.close()
    with pytest.raises(DatabaseError, match="pool is closed"):
        await closed.load_workflow(str(uuid.uuid4()))
