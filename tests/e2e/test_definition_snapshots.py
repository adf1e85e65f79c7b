"""On the fleet, a run finishes on the definition it started with: a run waiting for input
when its workflow file changes (a step renamed, one removed) and the workers restart on
the new file goes on through its original steps, the renamed one included; a new run
takes the new steps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ruvon_workers import Client
from ruvon_workers.persistence import migrate as migrations

from ..integration.test_definition_snapshots import write_registry
from .conftest import FleetWorker

S = "tests.fixtures.steps"
V1 = f"""\
workflow_type: Counter
workflow_version: "1"
steps:
  - {{name: A, function: {S}.increment}}
  - {{name: Approve, type: HUMAN_IN_LOOP}}
  - {{name: B, function: {S}.increment}}
  - {{name: C, function: {S}.increment}}
"""
V2 = f"""\
workflow_type: Counter
workflow_version: "2"
steps:
  - {{name: A, function: {S}.increment}}
  - {{name: Approve, type: HUMAN_IN_LOOP}}
  - {{name: B_New, function: {S}.increment}}
"""


def test_a_waiting_run_finishes_on_its_first_definition_after_the_file_changes(
        fleet_env: dict[str, str], start_worker: Callable[..., FleetWorker],
        tmp_path: Path) -> None:
    migrations.migrate(fleet_env["DATABASE_URL"])
    registry = write_registry(tmp_path, V1)
    env = {"RUVON_REGISTRY": str(registry)}
    urls = (fleet_env["DATABASE_URL"], fleet_env["CELERY_BROKER_URL"])
    worker = start_worker("--concurrency", "2", env=env)
    with Client(*urls, registry) as before:
        workflow_id = before.start("Counter", {})
        assert before.wait(workflow_id, 30).status == "WAITING_HUMAN"
    worker.stop()

    write_registry(tmp_path, V2)  # deployed: B renamed, C removed
    start_worker("--concurrency", "2", env=env)
    with Client(*urls, registry) as after:
        after.resume(workflow_id, {})
        done = after.wait(workflow_id, 30)
        assert done.status == "COMPLETED", done.error
        assert done.state["path"] == ["A", "B", "C"]
        assert [h.step for h in after.history(workflow_id) if h.status == "COMPLETED"] == [
            "A", "Approve", "B", "C"]

        fresh = after.start("Counter", {})
        assert after.wait(fresh, 30).status == "WAITING_HUMAN"
        after.resume(fresh, {})
        assert after.wait(fresh, 30).state["path"] == ["A", "B_New"]
