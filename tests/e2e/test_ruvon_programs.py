"""The compat programs (tests/compat) on the fleet: each driver, unchanged, is given
Ruvon's ``PostgresPersistenceProvider`` and ``CeleryExecutionProvider``, so that every
step runs as a Celery task on a real worker started for its workflows (their registry, and
the program's directory on its path, as a user would start one), and it ends as the SDK
ended it in-process: same status, state and order of steps. What each ``next_step`` call
answers differs by design: the fleet runs the following steps on its own, so a call
returns when the run comes to rest (it ends or waits for input)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.compat.test_programs import (
    NAMES,
    PENDING,
    PROGRAMS,
    assert_as_recorded,
    program_path,
    run_driver,
)

from .conftest import FleetWorker

ON_THE_FLEET = [name for name in NAMES if name not in PENDING]


def test_every_matching_program_is_run_on_the_fleet() -> None:
    assert len(ON_THE_FLEET) >= 12


@pytest.mark.parametrize("program", ON_THE_FLEET)
def test_program_on_the_fleet_ends_as_on_ruvon_sdk(
        program: str, fleet_env: dict[str, str], start_worker: Callable[..., FleetWorker],
        tmp_path: Path) -> None:
    env = {"RUVON_REGISTRY": str(PROGRAMS / program / "workflow_registry.yaml"),
           "PYTHONPATH": program_path(program)}
    worker = start_worker("--concurrency", "2", env=env)
    result = run_driver(program, tmp_path / "result.json",
                        {**fleet_env, **env, "RUVON_COMPAT_PROVIDERS": "fleet"}, timeout=120)
    assert worker.proc.poll() is None, worker.log()
    assert_as_recorded(program, result, ("status", "state", "trail"))
    # The steps ran as tasks on that worker, not in the driver's process.
    log = worker.log_path.read_text(errors="replace")
    applied = [line for line in log.splitlines()
               if "Task ruvon.step." in line and "'applied': True" in line]
    assert len(applied) >= 2, log[-3000:]


async def test_an_observer_hears_what_the_fleet_did(
        fleet_env: dict[str, str], start_worker: Callable[..., FleetWorker]) -> None:
    """With Ruvon's CeleryExecutionProvider the steps run on a worker, and the program's
    workflow_observer is told each of them and how the run ended, as in-process."""
    from ruvon.builder import WorkflowBuilder
    from ruvon.implementations.execution.celery import CeleryExecutionProvider
    from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
    from ruvon.providers.observer import WorkflowObserver
    from ruvon_workers.fleet.app import create_app
    from ruvon_workers.persistence import migrate as migrations

    from ..helpers import FLEET_REGISTRY

    class Heard(WorkflowObserver):
        def __init__(self) -> None:
            self.events: list[tuple[object, ...]] = []

        async def on_step_executed(self, workflow_id: str, step_name: str, step_index: int,
                                   status: str, result: object, current_state: object,
                                   duration_ms: float | None = None) -> None:
            self.events.append(("step", step_name, step_index, status))

        async def on_workflow_completed(self, workflow_id: str, workflow_type: str,
                                        final_state: object) -> None:
            self.events.append(("completed", workflow_type))

    migrations.migrate(fleet_env["DATABASE_URL"])
    start_worker("--concurrency", "2")
    store = PostgresPersistenceProvider(fleet_env["DATABASE_URL"])
    await store.initialize()
    builder = WorkflowBuilder(workflow_registry=str(FLEET_REGISTRY))
    execution = CeleryExecutionProvider(
        app=create_app(builder.registry, fleet_env["CELERY_BROKER_URL"]), timeout=60)
    heard = Heard()
    try:
        wf = await builder.create_workflow(
            "Spawner", persistence_provider=store, execution_provider=execution,
            workflow_observer=heard, initial_data={"label": "x"})
        while wf.status == "ACTIVE":
            await wf.next_step()
    finally:
        await store.close()
    assert wf.status == "COMPLETED"
    steps = [e for e in heard.events if e[0] == "step"]
    assert [s[1] for s in steps] == [s.name for s in builder.definition("Spawner").steps]
    assert {s[3] for s in steps} == {"COMPLETED"}
    assert heard.events[-1] == ("completed", "Spawner")
