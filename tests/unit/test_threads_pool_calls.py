"""Where one event loop serves every task (a ``threads`` pool worker), a blocking step
function runs in a thread of its own, so it delays no other step; and the step's
``time_limit_seconds``, which Celery does not enforce there, is enforced by the engine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ruvon_workers import WorkflowBuilder
from ruvon_workers.engine.context import StepContext
from ruvon_workers.engine.values import call_step_function, run_blocking_functions_in_threads
from ruvon_workers.errors import WorkflowFailedException
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.persistence import MemoryPersistenceProvider


@pytest.fixture
def off_loop() -> Iterator[None]:
    run_blocking_functions_in_threads(True)
    yield
    run_blocking_functions_in_threads(False)


def nap(state: object, context: StepContext) -> dict:
    began = time.monotonic()
    time.sleep(0.3)
    return {"thread": threading.get_ident(), "began": began, "ended": time.monotonic()}


async def test_blocking_functions_run_beside_the_loop(off_loop: None) -> None:
    context = StepContext(workflow_id="w", step_name="S")
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.01)
            ticks.append(time.monotonic())

    beat = asyncio.ensure_future(ticker())
    first, second = await asyncio.gather(call_step_function(nap, {}, context, {}),
                                         call_step_function(nap, {}, context, {}))
    beat.cancel()
    assert isinstance(first, dict) and isinstance(second, dict)
    assert threading.get_ident() not in (first["thread"], second["thread"])
    # Side by side: each began before the other ended; and the loop ran meanwhile.
    assert first["began"] < second["ended"] and second["began"] < first["ended"]
    assert any(first["began"] < t < first["ended"] for t in ticks)


async def test_without_it_a_blocking_function_holds_the_loop() -> None:
    context = StepContext(workflow_id="w", step_name="S")
    result = await call_step_function(nap, {}, context, {})
    assert isinstance(result, dict) and result["thread"] == threading.get_ident()


FINISHED: list[str] = []


def slow_step(state: object, context: StepContext) -> dict:
    time.sleep(1.5)
    FINISHED.append(context.workflow_id)
    return {}


async def test_the_time_limit_is_enforced_there(off_loop: None, tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "workflow_type: Limited\nworkflow_version: '1'\nsteps:\n"
        f"  - name: Slow\n    function: {__name__}.slow_step\n"
        "    time_limit_seconds: 0.2\n")
    (tmp_path / "reg.yaml").write_text(
        "workflows:\n  - type: Limited\n    config_file: wf.yaml\n"
        "    initial_state_model: tests.fixtures.models.CounterState\n")
    wf = await WorkflowBuilder.from_registry(tmp_path / "reg.yaml").create_workflow(
        "Limited", {}, persistence_provider=MemoryPersistenceProvider(),
        execution_provider=SyncExecutionProvider())
    with pytest.raises(WorkflowFailedException, match=r"ran past its time_limit_seconds"):
        await wf.next_step()
    assert wf.status == "FAILED"
    assert wf.id not in FINISHED  # failed at the limit, while the function still ran
