"""k8s/ plain manifests match the chart's defaults; NOTES tell how to watch the fleet."""

from __future__ import annotations

import pytest
import yaml
from chart_render import (
    CHART_DIR,
    CI_VALUES_DIR,
    HELM,
    REPO_ROOT,
    Rendered,
    container,
    env_map,
    pod_spec,
    render_ci,
    run_tool,
)

BASE = REPO_ROOT / "k8s" / "base"
PRODUCTION = REPO_ROOT / "k8s" / "overlays" / "production"


def _kustomize(kubectl_binary, path) -> Rendered:
    proc = run_tool([str(kubectl_binary), "kustomize", str(path)])
    assert proc.returncode == 0, proc.stderr
    return Rendered(tuple(d for d in yaml.safe_load_all(proc.stdout) if d))


@pytest.fixture(scope="module")
def base(kubectl_binary) -> Rendered:
    return _kustomize(kubectl_binary, BASE)


@pytest.fixture(scope="module")
def production(kubectl_binary) -> Rendered:
    return _kustomize(kubectl_binary, PRODUCTION)


def _worker(rendered: Rendered) -> dict:
    return rendered.component("Deployment", "worker")


def test_base_has_the_chart_default_kinds(base):
    chart = render_ci("default-values.yaml")
    chart_kinds = {
        d["kind"] for d in chart.docs if "helm.sh/hook" not in d["metadata"].get("annotations", {})
    }
    # The chart's Secrets are replaced by Secrets you create (see secret.example.yaml);
    # the migration Job is a plain Job instead of a hook.
    assert {d["kind"] for d in base.docs} == (chart_kinds - {"Secret"}) | {"Job"}
    assert base.count("Secret") == 0


def test_base_worker_matches_the_chart_worker(base):
    chart = render_ci("default-values.yaml")
    mine, theirs = _worker(base), chart.worker
    assert mine["metadata"]["name"] == "ruvon-workers-worker"
    assert "replicas" not in mine["spec"]
    mc, tc = container(mine, "worker"), container(theirs, "worker")
    for key in ("args", "ports", "livenessProbe", "readinessProbe", "startupProbe", "resources"):
        assert mc[key] == tc[key], key
    assert mc["securityContext"] == tc["securityContext"]
    assert pod_spec(mine)["securityContext"] == pod_spec(theirs)["securityContext"]
    assert (
        pod_spec(mine)["terminationGracePeriodSeconds"]
        == pod_spec(theirs)["terminationGracePeriodSeconds"]
    )
    for name in ("RUVON_SOFT_SHUTDOWN_TIMEOUT", "RUVON_METRICS_PORT", "RUVON_HEARTBEAT_FILE"):
        assert env_map(mc)[name] == env_map(tc)[name]
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        assert set(env_map(mc)[name]["valueFrom"]) == {"secretKeyRef"}
    assert mine["spec"]["strategy"] == theirs["spec"]["strategy"]


def test_base_hpa_and_config_match_the_chart(base):
    chart = render_ci("default-values.yaml")
    assert base.one("HorizontalPodAutoscaler")["spec"] | {"scaleTargetRef": None} == chart.one(
        "HorizontalPodAutoscaler"
    )["spec"] | {"scaleTargetRef": None}
    (cm,) = base.of_kind("ConfigMap")
    chart_cm = chart.component("ConfigMap", "config")
    assert cm["data"] == chart_cm["data"]
    env_from = container(_worker(base), "worker")["envFrom"]
    assert env_from == [{"configMapRef": {"name": cm["metadata"]["name"]}}]
    assert base.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_base_migration_job_runs_db_migrate(base):
    job = base.one("Job")
    assert container(job, "migrate")["args"] == ["db", "migrate"]


def test_production_overlay_patches_size_and_bounds(production):
    assert {
        d["metadata"].get("namespace") for d in production.docs if d["kind"] != "Namespace"
    } == {"ruvon"}
    hpa = production.one("HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (6, 40)
    worker = _worker(production)
    c = container(worker, "worker")
    assert c["args"][c["args"].index("--concurrency") + 1] == "8"
    assert c["resources"]["requests"]["cpu"] == "1"
    assert c["image"] == "registry.example.com/ruvon/ruvon-workers:0.1.0"
    soft = int(env_map(c)["RUVON_SOFT_SHUTDOWN_TIMEOUT"]["value"])
    assert pod_spec(worker)["terminationGracePeriodSeconds"] > soft


def test_secret_example_is_an_obvious_placeholder():
    docs = [d for d in yaml.safe_load_all((BASE / "secret.example.yaml").read_text()) if d]
    assert {d["kind"] for d in docs} == {"Secret"}
    for doc in docs:
        assert all("CHANGE-ME" in v for v in doc["stringData"].values())
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]


def test_install_notes_show_how_to_watch_the_fleet():
    proc = run_tool(
        [
            str(HELM),
            "install",
            "ruvon",
            str(CHART_DIR),
            "--dry-run=client",
            "--namespace",
            "ruvon-test",
            "--values",
            str(CI_VALUES_DIR / "default-values.yaml"),
        ]
    )
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert (
        "kubectl --namespace ruvon-test get pods -l app.kubernetes.io/name=ruvon-workers," in notes
    )
    assert "kubectl --namespace ruvon-test logs -f deployment/ruvon-ruvon-workers-worker" in notes
    assert "get hpa ruvon-ruvon-workers-worker -w" in notes
    assert "port-forward service/ruvon-ruvon-workers-flower 5555:5555" in notes
    assert "the broker (TCP 6379)" in notes
    assert "HTTP steps can reach no other host" in notes
