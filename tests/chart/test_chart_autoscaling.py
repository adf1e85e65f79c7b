"""Worker autoscaling: the CPU HPA by default, KEDA on request, never both."""

from __future__ import annotations

import base64

import pytest
from chart_render import CI_VALUE_FILES, FULLNAME, REDIS_PASSWORD, render, render_ci

WORKER = f"{FULLNAME}-worker"


def test_default_hpa_targets_70_percent_cpu_between_3_and_20_workers():
    hpa = render().one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["name"] == WORKER
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": WORKER,
    }
    assert hpa["spec"]["minReplicas"] == 3
    assert hpa["spec"]["maxReplicas"] == 20
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]


def test_default_hpa_behavior_damps_scale_down_and_allows_fast_scale_up():
    behavior = render().one("HorizontalPodAutoscaler")["spec"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleDown"]["policies"], "scale-down needs a rate-limiting policy"
    scale_up = behavior["scaleUp"]
    assert scale_up["policies"], "scale-up needs at least one policy"
    assert {p["type"] for p in scale_up["policies"]} <= {"Pods", "Percent"}
    assert all(p["value"] >= 1 and p["periodSeconds"] >= 1 for p in scale_up["policies"])


def test_hpa_bounds_and_target_follow_values():
    hpa = render(
        "autoscaling.minReplicas=5",
        "autoscaling.maxReplicas=50",
        "autoscaling.targetCPUUtilizationPercentage=60",
    ).one("HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (5, 50)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


def test_memory_target_is_optional():
    default_metrics = render().one("HorizontalPodAutoscaler")["spec"]["metrics"]
    assert [m["resource"]["name"] for m in default_metrics] == ["cpu"]

    metrics = render_ci("all-on-values.yaml").one("HorizontalPodAutoscaler")["spec"]["metrics"]
    by_name = {m["resource"]["name"]: m["resource"]["target"] for m in metrics}
    assert by_name["cpu"] == {"type": "Utilization", "averageUtilization": 70}
    assert by_name["memory"] == {"type": "Utilization", "averageUtilization": 80}


def test_autoscaled_deployment_leaves_replicas_to_the_autoscaler():
    assert "replicas" not in render().worker["spec"]
    assert "replicas" not in render_ci("keda-redis-values.yaml").worker["spec"]


def test_fixed_replicas_without_autoscaling():
    rendered = render("autoscaling.enabled=false", "worker.replicaCount=7")
    assert rendered.count("HorizontalPodAutoscaler") == 0
    assert rendered.count("ScaledObject") == 0
    assert rendered.worker["spec"]["replicas"] == 7


def test_keda_redis_scales_on_each_queue_length():
    rendered = render_ci("keda-redis-values.yaml")
    assert rendered.count("HorizontalPodAutoscaler") == 0
    so = rendered.one("ScaledObject")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"]["name"] == WORKER
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (2, 30)
    queues = rendered.worker_container["args"]
    queues = queues[queues.index("--queues") + 1].split(",")
    triggers = so["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["redis"] * len(queues)
    assert [t["metadata"]["listName"] for t in triggers] == queues
    for trigger in triggers:
        assert trigger["metadata"]["address"] == "redis-master.ruvon.svc:6379"
        assert trigger["metadata"]["listLength"] == "50"
        assert trigger["authenticationRef"]["name"] == WORKER


def test_keda_redis_watches_the_default_queue_when_no_queue_is_listed():
    rendered = render(
        "autoscaling.enabled=false",
        "keda.enabled=true",
        "keda.redis.address=r:6379",
        "worker.defaultQueue=main",
    )
    triggers = rendered.one("ScaledObject")["spec"]["triggers"]
    assert [t["metadata"]["listName"] for t in triggers] == ["main"]
    explicit = render(
        "autoscaling.enabled=false",
        "keda.enabled=true",
        "keda.redis.address=r:6379",
        "keda.redis.queues={main,slow}",
    ).one("ScaledObject")["spec"]["triggers"]
    assert [t["metadata"]["listName"] for t in explicit] == ["main", "slow"]


def test_keda_redis_password_comes_from_the_secret():
    rendered = render_ci("keda-redis-values.yaml")
    auth = rendered.one("TriggerAuthentication")
    assert auth["metadata"]["name"] == WORKER
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": FULLNAME, "key": "REDIS_PASSWORD"}
    ]
    # The chart Secret carries the password taken from the broker URL.
    data = rendered.get("Secret", FULLNAME)["data"]
    assert base64.b64decode(data["REDIS_PASSWORD"]).decode() == "ci-redis-password"


def test_keda_redis_password_defaults_to_the_broker_url_password():
    rendered = render("autoscaling.enabled=false", "keda.enabled=true", "keda.redis.address=r:6379")
    data = rendered.get("Secret", FULLNAME)["data"]
    assert base64.b64decode(data["REDIS_PASSWORD"]).decode() == REDIS_PASSWORD


def test_keda_redis_password_key_of_an_existing_secret():
    rendered = render(
        "autoscaling.enabled=false",
        "keda.enabled=true",
        "keda.redis.address=redis:6379",
        "secrets.existingSecret.name=my-connections",
        "secrets.existingSecret.redisPasswordKey=redis-pass",
        base=False,
    )
    assert rendered.one("TriggerAuthentication")["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "my-connections", "key": "redis-pass"}
    ]


def test_keda_redis_without_auth_renders_no_trigger_authentication():
    rendered = render(
        "autoscaling.enabled=false",
        "keda.enabled=true",
        "keda.redis.address=redis:6379",
        "keda.redis.auth=false",
    )
    assert rendered.count("TriggerAuthentication") == 0
    assert all(
        "authenticationRef" not in t for t in rendered.one("ScaledObject")["spec"]["triggers"]
    )


def test_keda_postgresql_scales_on_active_workflows():
    rendered = render("autoscaling.enabled=false", "keda.enabled=true", "keda.trigger=postgresql")
    assert rendered.count("HorizontalPodAutoscaler") == 0
    (trigger,) = rendered.one("ScaledObject")["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    assert trigger["metadata"]["query"] == (
        "SELECT count(*) FROM workflow_executions WHERE status = 'ACTIVE'"
    )
    assert trigger["metadata"]["targetQueryValue"] == "50"
    assert rendered.one("TriggerAuthentication")["spec"]["secretTargetRef"] == [
        {"parameter": "connection", "name": FULLNAME, "key": "DATABASE_URL"}
    ]


def test_keda_reuses_the_hpa_behavior():
    so = render_ci("keda-redis-values.yaml").one("ScaledObject")
    behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300


@pytest.mark.parametrize("values_file", CI_VALUE_FILES)
def test_hpa_and_keda_are_never_both_rendered(values_file):
    rendered = render_ci(values_file)
    assert rendered.count("HorizontalPodAutoscaler") + rendered.count("ScaledObject") == 1


@pytest.mark.parametrize(
    "sets, expected",
    [
        ((), ("HorizontalPodAutoscaler",)),
        (("autoscaling.enabled=false",), ()),
        (
            ("autoscaling.enabled=false", "keda.enabled=true", "keda.redis.address=r:6379"),
            ("ScaledObject",),
        ),
        (
            ("autoscaling.enabled=false", "keda.enabled=true", "keda.trigger=postgresql"),
            ("ScaledObject",),
        ),
    ],
)
def test_exactly_the_chosen_autoscaler_is_rendered(sets, expected):
    rendered = render(*sets)
    present = tuple(
        kind for kind in ("HorizontalPodAutoscaler", "ScaledObject") if rendered.count(kind)
    )
    assert present == expected
    assert all(rendered.count(kind) <= 1 for kind in expected)
