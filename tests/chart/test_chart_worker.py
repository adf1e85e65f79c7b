"""The worker Deployment: command line, probes, graceful shutdown, placement, security."""

from __future__ import annotations

import pytest
from chart_render import (
    CI_VALUE_FILES,
    FULLNAME,
    env_map,
    pod_spec,
    render,
    render_ci,
    workloads,
)


def test_worker_runs_the_cli_in_exec_form_with_values_from_the_chart():
    c = render().worker_container
    assert "command" not in c, "the image's ENTRYPOINT (ruvon-workers) must stay PID 1"
    # No --queues by default: the worker takes the default queue and every step queue.
    assert c["args"] == ["worker", "--concurrency", "4", "--pool", "prefork", "--loglevel", "INFO"]


def test_listed_queues_are_passed_to_the_worker():
    rendered = render("worker.queues={ruvon,payments}", "worker.defaultQueue=ruvon")
    args = rendered.worker_container["args"]
    assert args[args.index("--queues") + 1] == "ruvon,payments"


def test_worker_arguments_follow_values():
    c = render_ci("all-on-values.yaml").worker_container
    args = c["args"]
    assert args[0] == "worker"
    assert args[args.index("--concurrency") + 1] == "16"
    assert args[args.index("--pool") + 1] == "threads"
    assert args[args.index("--queues") + 1] == "ruvon,payments"
    assert args[args.index("--loglevel") + 1] == "DEBUG"
    assert args[-1] == "--without-gossip"
    assert all(isinstance(a, str) for a in args)


def test_liveness_uses_the_broker_independent_heartbeat():
    probe = render().worker_container["livenessProbe"]
    assert probe["exec"]["command"] == ["ruvon-workers", "health", "live", "--max-age", "60"]


def test_readiness_and_startup_ping_this_worker():
    c = render().worker_container
    assert c["readinessProbe"]["exec"]["command"] == ["ruvon-workers", "health", "ready"]
    assert c["startupProbe"]["exec"]["command"] == ["ruvon-workers", "health", "ready"]
    # The startup probe gives the worker minutes, not seconds, to join the broker.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_liveness_max_age_follows_values():
    probe = render("worker.livenessProbe.maxAgeSeconds=90").worker_container["livenessProbe"]
    assert probe["exec"]["command"][-2:] == ["--max-age", "90"]


@pytest.mark.parametrize("soft_timeout", [None, 0, 45, 600])
def test_grace_period_exceeds_the_soft_shutdown_timeout_given_to_the_worker(soft_timeout):
    sets = () if soft_timeout is None else (f"worker.softShutdownTimeout={soft_timeout}",)
    rendered = render(*sets)
    expected = 60 if soft_timeout is None else soft_timeout
    env = env_map(rendered.worker_container)
    assert env["RUVON_SOFT_SHUTDOWN_TIMEOUT"]["value"] == str(expected)
    grace = pod_spec(rendered.worker)["terminationGracePeriodSeconds"]
    assert grace > expected
    assert grace == expected + 30


def test_grace_margin_is_configurable():
    rendered = render("worker.softShutdownTimeout=100", "worker.terminationGraceMarginSeconds=5")
    assert pod_spec(rendered.worker)["terminationGracePeriodSeconds"] == 105


def test_metrics_port_is_exposed_and_passed_to_the_worker():
    rendered = render()
    c = rendered.worker_container
    assert c["ports"] == [{"name": "metrics", "containerPort": 9808, "protocol": "TCP"}]
    assert env_map(c)["RUVON_METRICS_PORT"]["value"] == "9808"
    assert env_map(c)["RUVON_HEARTBEAT_FILE"]["value"] == "/tmp/ruvon-worker.heartbeat"
    service = rendered.get("Service", f"{FULLNAME}-worker-metrics")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "worker"


def test_metrics_port_zero_turns_the_endpoint_off():
    rendered = render("worker.metricsPort=0")
    assert "ports" not in rendered.worker_container
    assert env_map(rendered.worker_container)["RUVON_METRICS_PORT"]["value"] == "0"
    assert not [
        s for s in rendered.of_kind("Service") if s["metadata"]["name"].endswith("-metrics")
    ]


def test_worker_reads_the_env_configmap():
    rendered = render()
    c = rendered.worker_container
    assert c["envFrom"] == [{"configMapRef": {"name": f"{FULLNAME}-env"}}]
    data = rendered.get("ConfigMap", f"{FULLNAME}-env")["data"]
    assert data["RUVON_DEFAULT_QUEUE"] == "ruvon"
    assert data["POSTGRES_POOL_MIN_SIZE"] == "1"
    assert data["POSTGRES_POOL_MAX_SIZE"] == "5"
    assert data["RUVON_USE_UVLOOP"] == "true"
    assert data["RUVON_USE_ORJSON"] == "true"
    assert "RUVON_REGISTRY" not in data, "without registry.files the image's registry is used"


def test_registry_configmap_is_mounted_and_selected():
    rendered = render_ci("all-on-values.yaml")
    cm = rendered.get("ConfigMap", "ruvon-registry")
    assert set(cm["data"]) == {"workflow_registry.yaml", "order_processing.yaml"}
    assert "config_file: order_processing.yaml" in cm["data"]["workflow_registry.yaml"]
    env = rendered.get("ConfigMap", "ruvon-env")["data"]
    assert env["RUVON_REGISTRY"] == "/etc/ruvon/workflow_registry.yaml"
    worker = rendered.get("Deployment", "ruvon-worker")
    mounts = {m["name"]: m for m in pod_spec(worker)["containers"][0]["volumeMounts"]}
    assert mounts["registry"] == {"name": "registry", "mountPath": "/etc/ruvon", "readOnly": True}
    volumes = {v["name"]: v for v in pod_spec(worker)["volumes"]}
    assert volumes["registry"]["configMap"]["name"] == "ruvon-registry"


def test_resources_are_set():
    resources = render().worker_container["resources"]
    assert resources["requests"]["cpu"] == "500m", "the CPU HPA needs a CPU request"
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_preferred_anti_affinity_spreads_workers_over_nodes():
    rendered = render()
    anti = pod_spec(rendered.worker)["affinity"]["podAntiAffinity"]
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selector == rendered.worker["spec"]["selector"]["matchLabels"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti


def test_pod_disruption_budget_covers_the_workers():
    rendered = render()
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    assert (
        pdb["spec"]["selector"]["matchLabels"] == rendered.worker["spec"]["selector"]["matchLabels"]
    )
    all_on = render_ci("all-on-values.yaml").one("PodDisruptionBudget")["spec"]
    assert all_on["minAvailable"] == "50%" and "maxUnavailable" not in all_on


def test_service_account_token_is_not_mounted():
    rendered = render()
    sa = rendered.one("ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    for obj in workloads(rendered):
        assert pod_spec(obj)["automountServiceAccountToken"] is False, obj["metadata"]["name"]
    assert pod_spec(rendered.worker)["serviceAccountName"] == sa["metadata"]["name"]


@pytest.mark.parametrize("values_file", CI_VALUE_FILES)
def test_every_pod_is_locked_down(values_file):
    rendered = render_ci(values_file)
    pods = list(workloads(rendered))
    assert {p["kind"] for p in pods} >= {"Deployment", "Job", "Pod"}
    for obj in pods:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = pod_spec(obj)
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["runAsUser"] == 10001, where
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], where
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] == "tmp", f"{where}: /tmp must be a writable emptyDir"


@pytest.mark.parametrize("values_file", CI_VALUE_FILES)
def test_every_object_has_the_standard_labels(values_file):
    for obj in render_ci(values_file).docs:
        labels = obj["metadata"]["labels"]
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert labels["app.kubernetes.io/name"] == "ruvon-workers", where
        assert labels["app.kubernetes.io/instance"] == "ruvon", where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert labels["app.kubernetes.io/version"] == "0.1.0", where
        assert labels["helm.sh/chart"] == "ruvon-workers-0.1.0", where


def test_image_defaults_to_the_app_version_and_can_be_pinned_by_digest():
    assert render().worker_container["image"] == "ruvon-workers:0.1.0"
    digest = "sha256:" + "a" * 64
    pinned = render("image.repository=registry.example.com/ruvon", f"image.digest={digest}")
    for obj in workloads(pinned):
        for c in pod_spec(obj)["containers"]:
            assert c["image"] == f"registry.example.com/ruvon@{digest}"
