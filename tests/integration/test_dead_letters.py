"""Dead letters go through a store's ``record_dead_letter``: the worker runtime's in a pool
process, a small one of its own in the worker's main process (consumer, transport)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from ruvon_workers.fleet import consumer
from ruvon_workers.persistence import MemoryPersistenceProvider, PostgresPersistenceProvider


@pytest.fixture
def own_store(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``DATABASE_URL`` on a fresh database, no worker runtime in this process; the
    dead-letter store this builds is closed afterwards."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(consumer, "process_runtimes", list)
    consumer._OwnStore._current = None
    yield database_url
    own = consumer._OwnStore._current
    consumer._OwnStore._current = None
    if own is not None:
        own.close()


async def _listed(database_url: str) -> list[Any]:
    store = PostgresPersistenceProvider(database_url, pool_min_size=1, pool_max_size=1)
    await store.initialize()
    try:
        return await store.dead_letters()
    finally:
        await store.close()


def _run_here(coro: Coroutine[Any, Any, Any]) -> Any:
    """A runtime's ``run`` for tests: this thread has no running loop."""
    return asyncio.run(coro)


async def test_the_consumer_records_through_a_store_of_its_own(own_store: str) -> None:
    message = SimpleNamespace(headers={"task": "ruvon.no\x00such", "id": "m-1"},
                              body=b"{\"a\": \"nul\\u0000\"}\x00" + b"x" * 5000)
    await asyncio.to_thread(consumer.SafeConsumer._refuse, None,  # type: ignore[arg-type]
                            message, "unknown task " + "r" * 3000)
    (row,) = await _listed(own_store)
    assert row.task == "ruvon.no\ufffdsuch" and row.workflow_id is None
    assert row.reason == ("unknown task " + "r" * 3000)[:2000]
    assert row.payload["headers"] == {"task": "ruvon.no\ufffdsuch", "id": "m-1"}
    body = row.payload["body"]
    assert body.startswith('{"a": "nul\\u0000"}\ufffd') and len(body) == 2000
    own = consumer._OwnStore._current
    assert own is not None and type(own.persistence) is PostgresPersistenceProvider

    # The same store serves the next one (no connection per dead letter).
    await asyncio.to_thread(consumer.record_dead_letter, "t", "w-1", "again", None)
    assert consumer._OwnStore._current is own
    newest = (await _listed(own_store))[0]
    assert (newest.task, newest.workflow_id, newest.reason, newest.payload) == (
        "t", "w-1", "again", None)


async def test_a_payload_json_cannot_hold_is_kept_as_its_repr(own_store: str) -> None:
    await asyncio.to_thread(consumer.record_dead_letter, "t", None, "odd payload",
                            {"value": object})
    (row,) = await _listed(own_store)
    assert row.payload == repr({"value": object})


def test_a_pool_process_records_through_its_runtime_store(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused@127.0.0.1:1/none")
    store = MemoryPersistenceProvider()
    runtime = SimpleNamespace(persistence=store, run=_run_here, can_run_here=lambda: True)
    monkeypatch.setattr(consumer, "process_runtimes", lambda: [runtime])
    monkeypatch.setattr(consumer._OwnStore, "_current", None)
    consumer.record_dead_letter("ruvon.step.T.S", "w-1", "step message needs workflow_id",
                                {"step": "S", "note": "a\x00b"})
    (row,) = _run_here(store.dead_letters())
    assert (row.task, row.workflow_id, row.payload) == (
        "ruvon.step.T.S", "w-1", {"step": "S", "note": "a\ufffdb"})
    assert consumer._OwnStore._current is None  # no second store was built


def test_a_runtime_that_cannot_run_here_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    busy = SimpleNamespace(persistence=None, run=None, can_run_here=lambda: False)
    monkeypatch.setattr(consumer, "process_runtimes", lambda: [busy])
    built: list[bool] = []

    class Own:
        persistence = MemoryPersistenceProvider()

        @staticmethod
        def run(coro: Coroutine[Any, Any, None]) -> None:
            built.append(True)
            _run_here(coro)

    monkeypatch.setattr(consumer._OwnStore, "for_this_process", classmethod(lambda cls: Own))
    store, run = consumer._dead_letter_store()
    assert store is Own.persistence
    run(store.record_dead_letter(None, None, "r", None))
    assert built == [True]


def test_a_failure_to_record_never_raises(monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused@127.0.0.1:1/none")

    class Down(MemoryPersistenceProvider):
        async def record_dead_letter(self, *args: Any) -> None:
            raise OSError("database is down")

    runtime = SimpleNamespace(persistence=Down(), run=_run_here, can_run_here=lambda: True)
    monkeypatch.setattr(consumer, "process_runtimes", lambda: [runtime])
    with caplog.at_level(logging.WARNING, logger="ruvon.consumer"):
        consumer.record_dead_letter("t", None, "refused", {})
    assert "could not record dead letter (refused): database is down" in caplog.text


def test_without_a_database_nothing_is_attempted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("RUVON_DB_URL", raising=False)
    monkeypatch.setattr(consumer, "process_runtimes", lambda: pytest.fail("looked for a store"))
    consumer.record_dead_letter("t", None, "refused", {})
