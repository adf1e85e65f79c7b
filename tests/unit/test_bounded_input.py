"""Bounded input: initial data and input over ``RUVON_MAX_INPUT_BYTES`` are refused by the
builder, the engine and the fleet's wire tasks (a dead letter, nothing stored); a dead
letter keeps an excerpt of a payload too big to keep whole."""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from ruvon_workers import WorkflowBuilder
from ruvon_workers.definitions import load_registry
from ruvon_workers.errors import ConfigurationError, InputTooLarge, InvalidStateError
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.fleet import runtime as fleet_runtime
from ruvon_workers.fleet.coordinator import Coordinator
from ruvon_workers.fleet.settings import FleetSettings
from ruvon_workers.persistence import MemoryPersistenceProvider
from ruvon_workers.persistence.base import DEAD_LETTER_PAYLOAD_MAX
from ruvon_workers.utils.serialization import dumps_bytes

from ..helpers import FLEET_REGISTRY, run_while_active
from .test_coordinator_rules import Outbox

MIB = 1024 * 1024


def _label_of_size(size: int) -> dict[str, Any]:
    """Initial data whose JSON encoding is exactly ``size`` bytes."""
    return {"label": "x" * (size - len(dumps_bytes({"label": ""})))}


# -- the builder and the engine -----------------------------------------------------------


def test_initial_data_over_1_mib_is_refused_naming_the_limit_size_and_setting() -> None:
    builder = WorkflowBuilder.from_registry(FLEET_REGISTRY)
    builder.new_record("Ticked", _label_of_size(MIB))  # exactly the limit is taken
    with pytest.raises(InputTooLarge) as info:
        builder.new_record("Ticked", _label_of_size(MIB + 1))
    assert str(info.value) == (
        "Initial data for 'Ticked': 1048577 bytes as JSON, more than the limit of 1048576 "
        "bytes (RUVON_MAX_INPUT_BYTES); pass a reference to large data (an id, a URL) "
        "instead")
    assert (info.value.size, info.value.limit) == (MIB + 1, MIB)
    # A ValueError and an InvalidStateError, as other refused data: the CLI's exit code 4.
    assert isinstance(info.value, InvalidStateError) and isinstance(info.value, ValueError)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (str(copy), copy.size, copy.limit) == (str(info.value), MIB + 1, MIB)


def test_ruvon_max_input_bytes_sets_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    builder = WorkflowBuilder.from_registry(FLEET_REGISTRY)
    monkeypatch.setenv("RUVON_MAX_INPUT_BYTES", "100")
    builder.new_record("Ticked", _label_of_size(100))
    with pytest.raises(InputTooLarge, match=r"101 bytes as JSON, more than the limit of 100 "):
        builder.new_record("Ticked", _label_of_size(101))
    monkeypatch.setenv("RUVON_MAX_INPUT_BYTES", "lots")
    with pytest.raises(ConfigurationError, match="RUVON_MAX_INPUT_BYTES='lots'"):
        builder.new_record("Ticked", {})


async def _waiting_child(store: MemoryPersistenceProvider) -> Any:
    wf = await WorkflowBuilder.from_registry(FLEET_REGISTRY).create_workflow(
        "Child", {"value": 1, "child_mode": "wait"}, persistence_provider=store,
        execution_provider=SyncExecutionProvider())
    await run_while_active(wf)
    assert wf.status == "WAITING_HUMAN" and wf.current_step_name == "Wait_Note"
    return wf


async def test_in_process_create_and_next_step_refuse_oversized_data(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryPersistenceProvider()
    wf = await _waiting_child(store)
    monkeypatch.setenv("RUVON_MAX_INPUT_BYTES", "1000")
    with pytest.raises(InputTooLarge, match=r"Initial data for 'Ticked': 1001 bytes"):
        await WorkflowBuilder.from_registry(FLEET_REGISTRY).create_workflow(
            "Ticked", _label_of_size(1001), persistence_provider=store,
            execution_provider=SyncExecutionProvider())
    assert await store.list_workflows(workflow_type="Ticked") == []
    note = {"note": "n" * 1000}
    with pytest.raises(InputTooLarge, match=r"Input for step 'Wait_Note': 1011 bytes as JSON"):
        await wf.next_step(user_input=note)
    stored = await store.load_workflow(wf.id)
    assert stored is not None
    assert stored.status == "WAITING_HUMAN" and stored.version == wf.record.version
    await wf.next_step(user_input={"note": "fine"})
    assert (await run_while_active(wf)).status == "COMPLETED"


def _coordinator(store: MemoryPersistenceProvider | None = None) -> tuple[Coordinator, Outbox]:
    outbox = Outbox()
    settings = FleetSettings("q", lease_seconds=300, sweep_interval=10, max_countdown=60)
    return Coordinator(load_registry(FLEET_REGISTRY), store or MemoryPersistenceProvider(),
                       outbox, settings), outbox  # type: ignore[arg-type]


async def test_the_coordinator_refuses_an_oversized_start_or_resume(
        monkeypatch: pytest.MonkeyPatch) -> None:
    coordinator, outbox = _coordinator()
    monkeypatch.setenv("RUVON_MAX_INPUT_BYTES", "1000")
    with pytest.raises(InputTooLarge, match=r"Initial data for 'Ticked': 1001 bytes"):
        await coordinator.start("Ticked", _label_of_size(1001))
    assert await coordinator.persistence.list_workflows() == [] and outbox.sent == []
    waiting = await _waiting_child(coordinator.persistence)  # type: ignore[arg-type]
    with pytest.raises(InputTooLarge, match=r"Input for step 'Wait_Note': 1011 bytes"):
        await coordinator.resume(waiting.id, {"note": "n" * 1000})
    stored = await coordinator.load(waiting.id)
    assert stored.status == "WAITING_HUMAN" and stored.version == waiting.record.version
    assert stored.runtime.pending_input is None and outbox.sent == []


# -- the wire tasks ---------------------------------------------------------------------


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """The fleet's Celery app (in-memory broker) whose process runtime is a coordinator
    on an in-memory store: calling a wire task runs it here, as a worker would."""
    from ruvon_workers.fleet.app import create_app

    app = create_app(load_registry(FLEET_REGISTRY), "memory://")
    coordinator, outbox = _coordinator()
    loop = asyncio.new_event_loop()
    runtime = SimpleNamespace(coordinator=coordinator, persistence=coordinator.persistence,
                              run=loop.run_until_complete, can_run_here=lambda: True)
    monkeypatch.setitem(fleet_runtime._runtimes, (os.getpid(), id(app)), runtime)
    # Dead letters are recorded when a database is configured; this one is never reached.
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused@127.0.0.1:1/none")
    monkeypatch.setenv("RUVON_MAX_INPUT_BYTES", "1000")
    yield SimpleNamespace(app=app, store=coordinator.persistence, outbox=outbox, run=runtime.run)
    loop.close()
    app.close()


def test_the_start_task_dead_letters_an_oversized_start_instead_of_storing_it(
        wire: SimpleNamespace) -> None:
    big = {"label": "x" * 200_000}
    answer = wire.app.tasks["ruvon.start_workflow"](workflow_type="Ticked", initial_data=big)
    assert "200012 bytes as JSON, more than the limit of 1000 bytes" in answer["error"]
    assert wire.run(wire.store.list_workflows()) == [] and wire.outbox.sent == []
    (letter,) = wire.run(wire.store.dead_letters())
    assert letter.task == "ruvon.start_workflow"
    assert letter.reason.startswith("Initial data for 'Ticked': 200012 bytes as JSON")
    # The refused payload is kept as an excerpt of its JSON text, with its size.
    payload = letter.payload
    assert payload["truncated"] is True
    assert payload["size"] == len(dumps_bytes({
        "workflow_type": "Ticked", "initial_data": big, "idempotency_key": None,
        "workflow_id": None}))
    assert payload["excerpt"].startswith('{"workflow_type":"Ticked","initial_data":{"label":"xxx')
    assert len(dumps_bytes(payload)) <= DEAD_LETTER_PAYLOAD_MAX


def test_the_resume_task_dead_letters_oversized_input(wire: SimpleNamespace) -> None:
    waiting = wire.run(_waiting_child(wire.store))
    answer = wire.app.tasks["ruvon.resume_workflow"](workflow_id=waiting.id,
                                                     user_input={"note": "n\x00" * 100_000})
    assert "Input for step 'Wait_Note': 700011 bytes as JSON" in answer["error"]
    stored = wire.run(wire.store.load_workflow(waiting.id))
    assert stored.status == "WAITING_HUMAN" and stored.version == waiting.record.version
    (letter,) = wire.run(wire.store.dead_letters())
    assert (letter.task, letter.workflow_id) == ("ruvon.resume_workflow", waiting.id)
    assert letter.payload["excerpt"].startswith(
        f'{{"workflow_id":"{waiting.id}","user_input":{{"note":"n\\u0000n\\u0000')
    assert len(dumps_bytes(letter.payload)) <= DEAD_LETTER_PAYLOAD_MAX
