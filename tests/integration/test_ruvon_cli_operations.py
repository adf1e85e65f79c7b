"""The ``ruvon`` commands that move stored workflows, run as a user runs them: start,
resume, retry, cancel, db, scan-zombies and the config setters. They need the database
alone: a run's definition comes from the snapshot stored when it started."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ruvon.cli import app

S = "tests.fixtures.steps"
WORKFLOW = f"""\
workflow_type: Counter
workflow_version: "1"
initial_state_model_path: tests.fixtures.models.CounterState
steps:
  - {{name: A, function: {S}.increment, automate_next: true}}
  - {{name: Approve, type: HUMAN_IN_LOOP, required_input: [label]}}
  - {{name: B, function: {S}.increment, automate_next: true}}
  - {{name: C, function: {S}.increment}}
"""


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workflows.db'}"
    url: str = request.getfixturevalue("database_url")
    return url


def ruvon(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(app, list(args), env={"RUVON_REGISTRY": "", **(env or {})})
    assert result.exit_code == code, result.output + (result.stderr or "")
    out = result.stdout.strip()
    return json.loads(out) if out.startswith(("{", "[")) else result


def test_start_resume_and_finish_from_the_command_line(tmp_path: Path, db_url: str) -> None:
    flow = tmp_path / "counter.yaml"
    flow.write_text(WORKFLOW)
    dry = ruvon("start", "Counter", "--config", str(flow), "-d", '{"count": 2}', "--dry-run",
                "--db-url", db_url)
    assert "would start Counter at step A" in dry.stdout
    assert ruvon("list", "--json", "--db-url", db_url) == []  # a dry run stores nothing

    started = ruvon("start", "Counter", "--config", str(flow), "-d", '{"count": 2}', "--auto",
                    "--json", "--db-url", db_url)
    assert (started["status"], started["current_step"]) == ("WAITING_HUMAN", "Approve")
    wid = started["id"]
    # No --config from here on: the definition stored with the run is used.
    refused = ruvon("resume", wid, "-i", '{"other": 1}', "--db-url", db_url, code=1)
    assert "label" in refused.stderr and "required" in refused.stderr.lower()
    resumed = ruvon("resume", wid, "-i", '{"label": "ok"}', "--json", "--db-url", db_url)
    assert (resumed["status"], resumed["current_step"]) == ("ACTIVE", "Approve")
    # --auto runs it here: Approve with the stored input, then B and C (chained).
    done = ruvon("resume", wid, "--auto", "--json", "--db-url", db_url)
    assert done["status"] == "COMPLETED", done
    assert done["state"]["label"] == "ok" and done["state"]["path"] == ["A", "B", "C"]
    again = ruvon("resume", wid, "--db-url", db_url)
    assert "is COMPLETED, not waiting" in again.stderr

    stats = ruvon("db", "stats", "--json", "--db-url", db_url)
    assert stats == {"total": 1, "by_status": {"COMPLETED": 1}}


def test_cancel_zombies_and_retry(tmp_path: Path, db_url: str) -> None:
    flow = tmp_path / "counter.yaml"
    flow.write_text(WORKFLOW)
    first = ruvon("start", "Counter", "--config", str(flow), "--json", "--db-url", db_url)
    cancelled = ruvon("cancel", first["id"], "--reason", "duplicate order", "--json",
                      "--db-url", db_url)
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["error"]["message"] == "duplicate order"
    assert "already ended CANCELLED" in ruvon("cancel", first["id"], "--db-url", db_url).stderr

    stuck = ruvon("start", "Counter", "--config", str(flow), "--json", "--db-url", db_url)
    assert ruvon("scan-zombies", "--json", "--db-url", db_url) == []
    time.sleep(1.2)
    found = ruvon("scan-zombies", "--threshold", "1", "--fix", "--json", "--db-url", db_url)
    assert [(z["id"], z["status"]) for z in found] == [(stuck["id"], "FAILED_WORKER_CRASH")]
    back = ruvon("retry", stuck["id"], "--auto", "--json", "--db-url", db_url)
    assert (back["status"], back["current_step"]) == ("WAITING_HUMAN", "Approve")
    assert back["state"]["path"] == ["A"]


def test_the_configured_store_serves_every_command(tmp_path: Path) -> None:
    env = {"RUVON_CONFIG_DIR": str(tmp_path / "cfg"), "DATABASE_URL": "", "RUVON_DB_URL": ""}
    missing = ruvon("list", env=env, code=1)
    assert "ruvon config set-persistence sqlite" in missing.stderr
    db = tmp_path / "mine.db"
    ruvon("config", "set-persistence", "sqlite", "--db-path", str(db), env=env)
    ruvon("config", "set-default", "json_output", "true", env=env)
    shown = ruvon("config", "show", "--json", env=env)
    assert shown["persistence"] == {"provider": "sqlite", "db_path": str(db)}
    assert shown["defaults"]["json_output"] is True
    flow = tmp_path / "counter.yaml"
    flow.write_text(WORKFLOW)
    started = ruvon("start", "Counter", "--config", str(flow), "--auto", "--json", env=env)
    assert [w["id"] for w in ruvon("list", "--json", env=env)] == [started["id"]]
    assert "schema ready" in ruvon("db", "init", env=env).stdout
    ruvon("config", "reset", "-y", env=env)
    assert ruvon("config", "show", "--json", env=env)["persistence"] == {"provider": "memory"}
