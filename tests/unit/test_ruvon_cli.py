"""The ``ruvon`` command (Ruvon's CLI): validate and run need no server; exit codes are
Ruvon's (0; 1 for a handled error; 2 for a usage error)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ruvon.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ruvon_front"
ORDER = FIXTURES / "order.yaml"


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_validate_a_workflow_file_and_draw_it() -> None:
    code, out, _ = _invoke("validate", str(ORDER), "--graph")
    assert code == 0
    assert "Valid: Order v2 (3 steps)" in out
    assert "flowchart TD" in out
    assert "s0 --> s1" in out and "s1 --> s2" in out


def test_validate_a_registry_as_json() -> None:
    code, out, _ = _invoke("validate", str(FIXTURES / "workflow_registry.yaml"), "--json")
    assert code == 0
    assert json.loads(out) == {"valid": True,
                               "workflows": {"Order": ["Reserve", "Charge", "Ship"]}}


def test_validate_names_each_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workflow_type: Bad\ninitial_state_model_path: "
                   "tests.fixtures.ruvon_front.steps.OrderState\nsteps:\n"
                   "  - name: A\n    function: nowhere.to_be_found\n")
    code, _, err = _invoke("validate", str(bad))
    assert code == 1
    assert "step 'A'" in err and "nowhere" in err


def test_run_a_workflow_file_in_memory() -> None:
    code, out, _ = _invoke("run", str(ORDER), "-d", '{"order_id": "R-1"}')
    assert code == 0
    assert "Status: COMPLETED" in out and '"Reserve"' in out


def test_a_run_that_fails_exits_1() -> None:
    code, out, err = _invoke("run", str(ORDER), "--data", '{"order_id": "declined"}')
    assert code == 1
    assert "Status: FAILED" in out and "card declined" in err


def test_bad_data_and_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("RUVON_DB_URL", raising=False)
    code, _, err = _invoke("run", str(ORDER), "-d", "[1, 2]")
    assert code == 1 and "--data must be a JSON object" in err
    code, _, _ = _invoke("run")
    assert code == 2
    code, _, err = _invoke("show", "some-id")
    assert code == 1 and "DATABASE_URL" in err


def test_config_path_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUVON_CONFIG_DIR", str(tmp_path))
    code, out, _ = _invoke("config", "path")
    assert code == 0 and out.strip() == str(tmp_path / "config.yaml")
    (tmp_path / "config.yaml").write_text("execution: {provider: thread_pool}\n")
    code, out, _ = _invoke("config", "show", "--json")
    shown = json.loads(out)
    assert shown["execution"]["provider"] == "thread_pool"
    assert shown["persistence"]["provider"] == "memory"


def test_run_keeps_the_run_in_a_sqlite_file(tmp_path: Path) -> None:
    import asyncio

    from ruvon_workers.persistence.sqlite import SQLitePersistenceProvider

    db = tmp_path / "workflows.db"
    code, out, _ = _invoke("run", str(ORDER), "-d", '{"order_id": "S-1"}', "--db", str(db))
    assert code == 0 and "Status: COMPLETED" in out

    async def stored() -> list[tuple[str, str]]:
        store = SQLitePersistenceProvider(str(db))
        await store.initialize()
        try:
            return [(r.workflow_type, str(r.status)) for r in await store.list_workflows()]
        finally:
            await store.close()

    assert asyncio.run(stored()) == [("Order", "COMPLETED")]
