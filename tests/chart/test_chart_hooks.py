"""Helm hooks: the migration Job, its hook-scoped Secret and the `helm test` pod; Flower."""

from __future__ import annotations

from chart_render import FULLNAME, container, env_map, pod_spec, render, render_ci

HOOK = "helm.sh/hook"
WEIGHT = "helm.sh/hook-weight"
DELETE = "helm.sh/hook-delete-policy"


def test_migration_job_runs_before_install_and_upgrade():
    job = render().get("Job", f"{FULLNAME}-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations[HOOK] == "pre-install,pre-upgrade"
    assert annotations[DELETE] == "before-hook-creation,hook-succeeded"
    assert int(annotations[WEIGHT]) == -5
    c = container(job, "migrate")
    assert "command" not in c
    assert c["args"] == ["db", "migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1


def test_migration_reads_a_hook_scoped_secret_created_before_it():
    rendered = render()
    job = rendered.get("Job", f"{FULLNAME}-migrate")
    ref = env_map(container(job, "migrate"))["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    secret = rendered.get("Secret", ref["name"])
    annotations = secret["metadata"]["annotations"]
    assert annotations[HOOK] == "pre-install,pre-upgrade"
    assert int(annotations[WEIGHT]) < int(job["metadata"]["annotations"][WEIGHT])
    assert "hook-succeeded" in annotations[DELETE]
    assert set(secret["data"]) == {"DATABASE_URL"}


def test_migration_does_not_depend_on_release_objects():
    # A pre-install hook runs before the release's ConfigMaps and ServiceAccount exist.
    job = render().get("Job", f"{FULLNAME}-migrate")
    spec = pod_spec(job)
    assert "serviceAccountName" not in spec
    assert "envFrom" not in container(job, "migrate")
    named = render("migration.serviceAccountName=migrator").get("Job", f"{FULLNAME}-migrate")
    assert pod_spec(named)["serviceAccountName"] == "migrator"


def test_migration_can_be_turned_off():
    rendered = render("migration.enabled=false")
    assert rendered.count("Job") == 0
    assert f"{FULLNAME}-migrate" not in {s["metadata"]["name"] for s in rendered.of_kind("Secret")}


def test_helm_test_pod_pings_the_fleet():
    pod = render().get("Pod", f"{FULLNAME}-test-fleet")
    assert pod["metadata"]["annotations"][HOOK] == "test"
    c = container(pod, "fleet")
    assert c["args"] == ["health", "fleet"]
    assert "CELERY_BROKER_URL" in env_map(c)
    assert pod["spec"]["restartPolicy"] == "Never"


def test_non_hook_objects_carry_no_hook_annotations():
    for obj in render().docs:
        annotations = obj["metadata"].get("annotations") or {}
        if obj["kind"] in ("Job", "Pod") or obj["metadata"]["name"].endswith("-migrate"):
            continue
        assert HOOK not in annotations, f"{obj['kind']}/{obj['metadata']['name']}"


def test_flower_probes_healthcheck_and_listens_on_its_port():
    rendered = render()
    flower = rendered.component("Deployment", "flower")
    assert flower["spec"]["replicas"] == 1
    c = container(flower, "flower")
    # Flower binds to 127.0.0.1 unless told otherwise: the Service and probes need all.
    assert c["args"] == ["flower", "--port", "5555", "--address", "0.0.0.0"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthcheck", "port": "http"}, probe
    assert c["ports"] == [{"name": "http", "containerPort": 5555, "protocol": "TCP"}]
    ref = env_map(c)["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"{FULLNAME}-flower", "key": "FLOWER_BASIC_AUTH"}
    service = rendered.get("Service", f"{FULLNAME}-flower")
    assert service["spec"]["ports"][0]["port"] == 5555
    assert service["spec"]["selector"] == flower["spec"]["selector"]["matchLabels"]
    assert rendered.count("Ingress") == 0


def test_flower_ingress_routes_to_the_flower_service():
    rendered = render_ci("all-on-values.yaml")
    ingress = rendered.get("Ingress", "ruvon-flower")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "flower.ruvon.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "ruvon-flower", "port": {"number": 5555}}
    assert ingress["spec"]["tls"][0]["secretName"] == "flower-tls"


def test_flower_can_be_turned_off():
    rendered = render("flower.enabled=false", "flower.ingress.enabled=true")
    names = {o["metadata"]["name"] for o in rendered.docs}
    assert not {n for n in names if "flower" in n}
