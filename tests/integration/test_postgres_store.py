"""PostgreSQL-specific behaviour: the in-process engine on it, pool settings, ids.

The rules every store meets (compare-and-set, idempotency, leases, fan-outs, schedules,
dead letters) are in tests/contract, run against PostgreSQL among others."""

from __future__ import annotations

import pytest

from ruvon_workers import StaleStateError, WorkflowBuilder
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.persistence import PostgresPersistenceProvider

SYNC = SyncExecutionProvider()
ORDER = {"order_id": "o", "customer_id": "c", "items": [{"sku": "x", "quantity": 1,
                                                         "unit_price": 5}]}


async def test_stale_in_process_workflow_gets_typed_error(builder: WorkflowBuilder,
                                                          pg_persistence) -> None:  # type: ignore[no-untyped-def]
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


async def test_history_records_every_transition(builder: WorkflowBuilder, pg_persistence) -> None:  # type: ignore[no-untyped-def]
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
            assert (await cur.fetchone())[0] == "1500ms"
    finally:
        await p.close()


async def test_unreachable_database_names_the_fix() -> None:
    from ruvon_workers.persistence.postgres import DatabaseError

    p = PostgresPersistenceProvider("postgresql://nobody@127.0.0.1:1/none",
                                    pool_min_size=1, pool_command_timeout=1)
    with pytest.raises(DatabaseError, match="Check DATABASE_URL"):
        await p.initialize()


async def test_a_malformed_id_is_not_found(pg_persistence) -> None:  # type: ignore[no-untyped-def]
    from ruvon_workers import WorkflowNotFound

    # (An unknown id loads as None in every store: tests/contract.)
    with pytest.raises(WorkflowNotFound):
        await pg_persistence.load_workflow("not-a-uuid")
