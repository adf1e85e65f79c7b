"""ServiceMonitor and PrometheusRule (both optional)."""

from __future__ import annotations

from chart_render import render, render_ci

OPTIONAL_KINDS = ("ServiceMonitor", "PrometheusRule", "Ingress", "ScaledObject")


def test_optional_objects_are_off_by_default():
    rendered = render_ci("default-values.yaml")
    for kind in OPTIONAL_KINDS:
        assert rendered.count(kind) == 0, kind


def test_service_monitor_scrapes_the_worker_metrics_service():
    rendered = render_ci("all-on-values.yaml")
    sm = rendered.one("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = rendered.get("Service", "ruvon-worker-metrics")
    selector = sm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    flower_service = rendered.get("Service", "ruvon-flower")
    assert not selector.items() <= flower_service["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["ruvon-test"]}


def test_prometheus_rule_alerts():
    rule = render_ci("all-on-values.yaml").one("PrometheusRule")
    (group,) = rule["spec"]["groups"]
    rules = {r["alert"]: r for r in group["rules"]}
    job = 'job="ruvon-worker-metrics"'
    throughput = rules["RuvonWorkflowThroughputLow"]["expr"]
    assert "rate(ruvon_workflows_started_total{" in throughput and throughput.endswith("< 10")
    p99 = rules["RuvonWorkflowLatencyP99High"]["expr"]
    assert p99.startswith("histogram_quantile(0.99,") and p99.endswith("> 10")
    assert "ruvon_workflow_duration_seconds_bucket{" in p99
    pool = rules["RuvonDbPoolSaturated"]["expr"]
    assert "ruvon_db_pool_active_connections{" in pool and "/ ruvon_db_pool_max_size{" in pool
    assert pool.endswith("> 0.9")
    assert (
        rules["RuvonWorkerDown"]["expr"].startswith("up{")
        and job in rules["RuvonWorkerDown"]["expr"]
    )
    for name in (
        "RuvonWorkflowThroughputLow",
        "RuvonWorkflowLatencyP99High",
        "RuvonDbPoolSaturated",
    ):
        assert job in rules[name]["expr"], name
    assert "RuvonNoWorkflowFinished" in rules, "additionalRules are appended"
    for r in rules.values():
        assert r["labels"]["severity"] in ("info", "warning", "critical")


def test_prometheus_rule_thresholds_follow_values():
    rule = render(
        "metrics.prometheusRule.enabled=true",
        "metrics.prometheusRule.minWorkflowsPerSecond=2.5",
        "metrics.prometheusRule.p99DurationSeconds=30",
        "metrics.prometheusRule.poolUtilisation=0.75",
    ).one("PrometheusRule")
    exprs = {r["alert"]: r["expr"] for r in rule["spec"]["groups"][0]["rules"]}
    assert exprs["RuvonWorkflowThroughputLow"].endswith("< 2.5")
    assert exprs["RuvonWorkflowLatencyP99High"].endswith("> 30")
    assert exprs["RuvonDbPoolSaturated"].endswith("> 0.75")
