"""Reading workflows from the command line needs the database alone: ``show``, ``list``
and ``logs`` run with no broker configured; what sends says what to set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ruvon_workers import Workflow, WorkflowBuilder
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.persistence import PostgresPersistenceProvider

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "config" / "workflow_registry.yaml"
ORDER = {"order_id": "cli-1", "customer_id": "c", "items": [
    {"sku": "s", "quantity": 1, "unit_price": 5}]}


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CELERY_BROKER_URL", "TEST_REDIS_URL", "REDIS_URL")}
    env.update(DATABASE_URL=database_url, RUVON_REGISTRY=str(REGISTRY),
               PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


async def _one_step_run(database_url: str) -> Workflow:
    """An OrderProcessing run in the database, one step in."""
    store = PostgresPersistenceProvider(database_url)
    await store.initialize()
    try:
        wf = await WorkflowBuilder.from_registry(REGISTRY).create_workflow(
            "OrderProcessing", ORDER, persistence_provider=store,
            execution_provider=SyncExecutionProvider())
        await wf.next_step()
    finally:
        await store.close()
    return wf


async def test_show_list_and_logs_need_no_broker(database_url: str) -> None:
    wf = await _one_step_run(database_url)
    shown = _cli(database_url, "show", wf.id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == wf.id
    listed = _cli(database_url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [w["id"] for w in json.loads(listed.stdout)] == [wf.id]
    # The Ruvon docs' names for a waiting run filter as WAITING_HUMAN; a typo is refused.
    for name in ("ACTIVE", "active", "PAUSED", "WAITING_HUMAN_INPUT"):
        filtered = _cli(database_url, "list", "--status", name, "--json")
        assert filtered.returncode == 0, filtered.stderr
        ids = [w["id"] for w in json.loads(filtered.stdout)]
        assert ids == ([wf.id] if name.upper() == wf.status else []), name
    wrong = _cli(database_url, "list", "--status", "DONE")
    assert wrong.returncode == 2 and "unknown status 'DONE'" in wrong.stderr
    logged = _cli(database_url, "logs", wf.id, "--json")
    assert logged.returncode == 0, logged.stderr
    assert [h["status"] for h in json.loads(logged.stdout)][:2] == ["CREATED", "COMPLETED"]


def test_what_sends_says_to_set_the_broker(database_url: str) -> None:
    started = _cli(database_url, "start", "OrderProcessing", "--data", json.dumps(ORDER))
    assert started.returncode != 0
    assert "CELERY_BROKER_URL" in started.stderr and "Traceback" not in started.stderr


def test_the_ruvon_command_reads_the_database_alone(database_url: str) -> None:
    import asyncio

    from click.testing import CliRunner

    from ruvon.cli import app

    wf = asyncio.run(_one_step_run(database_url))
    runner = CliRunner()
    listed = runner.invoke(app, ["list", "--json", "--db-url", database_url])
    assert listed.exit_code == 0, listed.output
    assert [w["id"] for w in json.loads(listed.stdout)] == [wf.id]
    shown = runner.invoke(app, ["show", wf.id, "--logs", "--json", "--db-url", database_url])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["status"] == wf.status and data["logs"][0]["status"] == "CREATED"
    logged = runner.invoke(app, ["logs", wf.id, "--step", "Validate_Order", "--json",
                                 "--db-url", database_url])
    assert logged.exit_code == 0, logged.output
    assert [e["status"] for e in json.loads(logged.stdout)] == ["CREATED", "COMPLETED"]
    missing = runner.invoke(app, ["show", "7a3c1a8e-7d1f-4d55-9f1e-1d1a1d1a1d1a",
                                  "--db-url", database_url])
    assert missing.exit_code == 1 and "not found" in missing.stderr


def test_db_purge_removes_only_what_ended_before_the_cutoff(database_url: str) -> None:
    import asyncio

    wf = asyncio.run(_one_step_run(database_url))  # running: never purged
    dry = _cli(database_url, "db", "purge", "--older-than", "0s", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["workflows"] == 0
    wrong = _cli(database_url, "db", "purge", "--older-than", "soon")
    assert wrong.returncode != 0 and "e.g. 30d" in wrong.stderr
    from ruvon_workers.persistence import PostgresPersistenceProvider

    async def end() -> None:
        store = PostgresPersistenceProvider(database_url)
        await store.initialize()
        try:
            from ruvon_workers.engine.records import RecordUpdate

            record = await store.load_workflow(wf.id)
            assert record is not None
            await store.apply(wf.id, record.version,
                              RecordUpdate.keep(record, status="COMPLETED"), [])
        finally:
            await store.close()

    asyncio.run(end())
    kept = _cli(database_url, "db", "purge", "--older-than", "30d", "--json")
    assert json.loads(kept.stdout)["workflows"] == 0  # ended just now: kept
    gone = _cli(database_url, "db", "purge", "--older-than", "0s", "--json")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["workflows"] == 1
    shown = _cli(database_url, "show", wf.id)
    assert shown.returncode == 3 and "no workflow with id" in shown.stderr.lower()
