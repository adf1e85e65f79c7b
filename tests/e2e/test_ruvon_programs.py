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
