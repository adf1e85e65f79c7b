"""The Grafana dashboard and the Prometheus alert rules: every expression parses, names
only metrics (and labels) the workers export, and the guide's alerts are there. Also the
Flower command's login checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "ruvon-dashboard.json"
ALERTS = ROOT / "config" / "prometheus" / "alerts.yaml"
#: Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}


def exported() -> dict[str, set[str]]:
    """Every series name the workers export, with its labels."""
    from prometheus_client.metrics import MetricWrapperBase

    from ruvon_workers.observability import metrics

    series: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        name, labels = metric._name, set(metric._labelnames)  # no public accessors
        if metric._type == "counter":
            series[f"{name}_total"] = labels
        elif metric._type == "histogram":
            series[f"{name}_bucket"] = labels | {"le"}
            series[f"{name}_count"] = series[f"{name}_sum"] = labels
        else:
            series[name] = labels
    return series


def selectors(expr: Any) -> list[Any]:
    found: list[Any] = []
    promql_parser.walk(expr, lambda node: found.append(node)
                       if isinstance(node, promql_parser.VectorSelector) else None)
    return found


def check_expression(query: str, allowed_extra: frozenset[str] = frozenset()) -> set[str]:
    """Parse ``query``; check its metrics, label matchers and ``by`` labels; return the
    metric names it uses."""
    series = exported()
    expr = promql_parser.parse(query)  # raises ValueError on a syntax error
    names = {s.name for s in selectors(expr)}
    unknown = names - set(series) - allowed_extra
    assert not unknown, f"{query}: the workers export no {sorted(unknown)}"

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name in series:
            for matcher in node.matchers.matchers:
                assert matcher.name in series[node.name] | TARGET_LABELS, (
                    f"{query}: {node.name} has no label {matcher.name!r}")
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            inner = [s.name for s in selectors(node.expr) if s.name in series]
            labels = set().union(*(series[n] for n in inner)) | TARGET_LABELS
            if inner and str(node.modifier.type).endswith("By"):
                missing = set(node.modifier.labels) - labels
                assert not missing, f"{query}: aggregates by unknown label(s) {missing}"

    promql_parser.walk(expr, visit)
    return names


def dashboard_panels() -> list[dict[str, Any]]:
    return json.loads(DASHBOARD.read_text())["panels"]


def alert_rules() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}


def test_a_syntax_error_is_caught() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(ruvon_steps_total[5m])")
    with pytest.raises(AssertionError, match="export no"):
        check_expression("rate(ruvon_no_such_metric_total[5m])")
    with pytest.raises(AssertionError, match="no label"):
        check_expression('ruvon_workflows{state="ACTIVE"}')
    with pytest.raises(AssertionError, match="unknown label"):
        check_expression("sum by (step) (rate(ruvon_steps_total[5m]))")


@pytest.mark.parametrize("panel", dashboard_panels(), ids=lambda p: p["title"])
def test_every_panel_parses_and_names_exported_metrics(panel: dict[str, Any]) -> None:
    assert panel["targets"], panel["title"]
    assert panel["datasource"]["uid"] == "${datasource}"
    for target in panel["targets"]:
        assert check_expression(target["expr"]), target["expr"]


def test_dashboard_covers_what_operators_watch() -> None:
    exprs = " ".join(t["expr"] for p in dashboard_panels() for t in p["targets"])
    for needed in ("rate(ruvon_workflows_started_total[5m])",
                   "histogram_quantile(0.5, sum by (le) (rate(ruvon_workflow_duration_seconds",
                   "histogram_quantile(0.95, sum by (le) (rate(ruvon_workflow_duration_seconds",
                   "histogram_quantile(0.99, sum by (le) (rate(ruvon_workflow_duration_seconds",
                   "ruvon_db_pool_active_connections / ruvon_db_pool_max_size",
                   "sum by (le, step_name) (rate(ruvon_step_duration_seconds_bucket",
                   'ruvon_steps_total{outcome="failed"}',
                   "ruvon_queue_lag_seconds_bucket",
                   "max by (status) (ruvon_workflows)"):
        assert needed in exprs, needed
    ids = [p["id"] for p in dashboard_panels()]
    assert len(ids) == len(set(ids))


def test_alert_rules_parse_and_name_exported_metrics() -> None:
    rules = alert_rules()
    for rule in rules.values():
        check_expression(rule["expr"], allowed_extra=frozenset({"up"}))
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
    assert set(rules) == {"RuvonWorkflowThroughputLow", "RuvonWorkflowLatencyP99High",
                          "RuvonDbPoolSaturated", "RuvonBacklogGrowing", "RuvonWorkerDown"}


def test_the_guides_thresholds() -> None:
    rules = alert_rules()

    def compact(name: str) -> str:
        return " ".join(rules[name]["expr"].split())

    assert compact("RuvonWorkflowThroughputLow") == (
        "sum(rate(ruvon_workflows_started_total[5m])) < 10")
    assert compact("RuvonWorkflowLatencyP99High").startswith("histogram_quantile(0.99,")
    assert compact("RuvonWorkflowLatencyP99High").endswith("> 10")
    assert compact("RuvonDbPoolSaturated") == (
        "ruvon_db_pool_active_connections / ruvon_db_pool_max_size > 0.9")
    assert compact("RuvonWorkerDown").startswith("up{") and compact("RuvonWorkerDown").endswith(
        "== 0")


def test_flower_refuses_to_start_without_a_login(monkeypatch: pytest.MonkeyPatch) -> None:
    from ruvon_workers.cli.main import cli
    from ruvon_workers.cli.monitoring import check_basic_auth

    assert check_basic_auth("ops:secret,viewer:pw") is None
    assert check_basic_auth("ops") and check_basic_auth("ops:") and check_basic_auth(":pw")
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    result = CliRunner().invoke(cli, ["flower"])
    assert result.exit_code == 4
    assert "FLOWER_BASIC_AUTH=user:password" in result.output
    assert "--no-auth" in result.output
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops")
    result = CliRunner().invoke(cli, ["flower"])
    assert result.exit_code == 4 and "user:password" in result.output


# -- how a finished step task is counted -----------------------------------------------


def test_step_outcomes() -> None:
    from ruvon_workers.observability.hooks import outcome

    applied = {"applied": True, "status": "ACTIVE", "duration_ms": 1.0, "retry": False}
    assert outcome("SUCCESS", applied) == "applied"
    assert outcome("SUCCESS", {**applied, "retry": True}) == "retry"
    assert outcome("SUCCESS", {**applied, "status": "FAILED_ROLLED_BACK"}) == "failed"
    assert outcome("SUCCESS", {"applied": False, "status": None}) == "stale"
    assert outcome("SUCCESS", {"applied": False, "reason": "malformed step message"}) == (
        "rejected")
    assert outcome("RETRY", None) == outcome("FAILURE", None) == "error"


def test_a_step_run_inside_another_steps_task_is_counted_as_a_step() -> None:
    from ruvon_workers.fleet.fanout import StepOutcomeReport
    from ruvon_workers.observability import metrics
    from ruvon_workers.observability.hooks import on_coordinator

    counted = metrics.steps.labels(workflow_type="Chain", step_name="Two", outcome="applied")
    timed = metrics.step_duration.labels(step_name="Two")
    before, seen = counted._value.get(), timed._sum.get()
    on_coordinator("continued", workflow_type="Chain", report=StepOutcomeReport(
        True, status="ACTIVE", step="Two", duration_ms=250.0))
    assert counted._value.get() == before + 1
    assert timed._sum.get() == pytest.approx(seen + 0.25)


def test_a_workflow_starts_when_the_fleet_runs_its_first_step(tmp_path: Path) -> None:
    from ruvon_workers.definitions import load_registry
    from ruvon_workers.observability.hooks import step_tasks

    fleet = step_tasks(load_registry(ROOT / "tests/fixtures/fleet/workflow_registry.yaml"))
    assert fleet["ruvon.step.OrderProcessing.Validate_Order"].first_version == 0
    assert fleet["ruvon.step.OrderProcessing.Check_Amount"].first_version == -1
    # A first step that waits for input runs after the resume (version 1).
    (tmp_path / "ask.yaml").write_text(
        'workflow_type: AskFirst\nworkflow_version: "1"\nsteps:\n'
        "  - name: Ask\n    type: HUMAN_IN_LOOP\n"
        "    function: tests.fixtures.fleet_steps.mark_and_increment\n"
        "  - name: Done\n    function: tests.fixtures.fleet_steps.mark_and_increment\n")
    (tmp_path / "registry.yaml").write_text(
        "workflows:\n  - type: AskFirst\n    config_file: ask.yaml\n"
        "    initial_state_model: tests.fixtures.models.CounterState\n")
    ask = step_tasks(load_registry(tmp_path / "registry.yaml"))
    assert ask["ruvon.step.AskFirst.Ask"].first_version == 1
    assert ask["ruvon.step.AskFirst.Done"].first_version == -1
