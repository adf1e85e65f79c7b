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
    render,
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


def _chart_with_server() -> Rendered:
    return render("server.enabled=true", values=("default-values.yaml",))


def _secret_refs(c: dict) -> dict[str, str]:
    """Environment variable -> key of the Secret it is read from."""
    return {
        name: e["valueFrom"]["secretKeyRef"]["key"]
        for name, e in env_map(c).items()
        if "secretKeyRef" in e.get("valueFrom", {})
    }


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


def test_base_server_matches_the_chart_server(base):
    mine, theirs = base.component("Deployment", "server"), _chart_with_server().component(
        "Deployment", "server"
    )
    assert mine["metadata"]["name"] == "ruvon-workers-server"
    # The same selector but for the instance label, which follows the release's name.
    assert set(mine["spec"]["selector"]["matchLabels"]) == set(
        theirs["spec"]["selector"]["matchLabels"]
    )
    assert mine["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "server"
    mc, tc = container(mine, "server"), container(theirs, "server")
    assert mc["args"] == ["server", "--host", "0.0.0.0", "--port", "8000"]
    for key in ("args", "ports", "livenessProbe", "readinessProbe", "startupProbe", "resources"):
        assert mc[key] == tc[key], key
    assert mc["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert mc["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert mc["securityContext"] == tc["securityContext"]
    assert mc["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod_spec(mine)["securityContext"] == pod_spec(theirs)["securityContext"]
    assert pod_spec(mine)["automountServiceAccountToken"] is False
    assert mc["volumeMounts"] == tc["volumeMounts"]
    assert pod_spec(mine)["volumes"] == pod_spec(theirs)["volumes"]
    # Same variables from the same Secret keys (the Secrets' names follow the release).
    assert _secret_refs(mc) == _secret_refs(tc)
    assert env_map(mc)["RUVON_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == (
        "ruvon-workers-server"
    )
    assert set(env_map(mc)) == set(env_map(tc))
    (cm,) = base.of_kind("ConfigMap")
    assert mc["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}]


def test_base_server_service_and_policy(base):
    deployment = base.component("Deployment", "server")
    service = base.component("Service", "server")
    chart = _chart_with_server().component("Service", "server")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == chart["spec"]["ports"]
    policy = base.one("NetworkPolicy")["spec"]
    chart_policy = _chart_with_server().one("NetworkPolicy")["spec"]
    assert policy["ingress"] == chart_policy["ingress"]
    assert policy["egress"] == chart_policy["egress"]
    rule = next(r for r in policy["ingress"] if r["ports"][0]["port"] == 8000)
    assert "from" not in rule
    # The server's pods are selected by the policy: egress to DNS, PostgreSQL and the
    # broker only.
    selector = policy["podSelector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert sorted(p["port"] for r in policy["egress"] for p in r["ports"]) == [
        53, 53, 5432, 6379]


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
    server = production.component("Deployment", "server")
    assert server["spec"]["replicas"] == 2
    assert container(server, "server")["image"] == c["image"]


def test_secret_example_is_an_obvious_placeholder():
    docs = [d for d in yaml.safe_load_all((BASE / "secret.example.yaml").read_text()) if d]
    assert {d["kind"] for d in docs} == {"Secret"}
    for doc in docs:
        assert all("CHANGE-ME" in v for v in doc["stringData"].values())
    # One example per Secret the manifests read.
    assert {d["metadata"]["name"]: set(d["stringData"]) for d in docs} == {
        "ruvon-workers": {"DATABASE_URL", "CELERY_BROKER_URL"},
        "ruvon-workers-flower": {"FLOWER_BASIC_AUTH"},
        "ruvon-workers-server": {"RUVON_API_TOKEN", "RUVON_SESSION_SECRET"},
    }
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]


def test_every_base_manifest_is_in_the_kustomization():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    files = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == files


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
