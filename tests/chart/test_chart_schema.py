"""values.schema.json and the template guards refuse bad values with readable messages."""

from __future__ import annotations

import json

import pytest
from chart_render import CHART_DIR, render, render_error

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())


def test_schema_is_draft_07_and_closed_at_the_top_level():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["additionalProperties"] is False


def test_schema_documents_the_checks_left_to_the_templates():
    description = SCHEMA["description"]
    assert "autoscaling.minReplicas <= autoscaling.maxReplicas" in description
    min_replicas = SCHEMA["properties"]["autoscaling"]["properties"]["minReplicas"]
    assert "maxReplicas" in min_replicas["description"]


def test_hpa_and_keda_together_are_refused_by_the_schema():
    err = render_error("autoscaling.enabled=true", "keda.enabled=true", "keda.redis.address=r:6379")
    assert "autoscaling.enabled and keda.enabled are mutually exclusive" in err
    assert "set autoscaling.enabled=false" in err


def test_hpa_and_keda_together_are_refused_by_the_template_guard_too():
    err = render_error(
        "autoscaling.enabled=true",
        "keda.enabled=true",
        "keda.redis.address=r:6379",
        extra=("--skip-schema-validation",),
    )
    assert "autoscaling.enabled and keda.enabled are mutually exclusive" in err
    assert "Set autoscaling.enabled=false to scale with KEDA" in err


@pytest.mark.parametrize("concurrency", ["0", "-3"])
def test_concurrency_below_one_is_refused(concurrency):
    err = render_error(f"worker.concurrency={concurrency}")
    assert "/worker/concurrency" in err
    assert "minimum" in err


def test_non_integer_concurrency_is_refused():
    err = render_error("worker.concurrency=four")
    assert "/worker/concurrency" in err


def test_unknown_top_level_key_is_refused():
    err = render_error("replicaCount=3")
    assert "additional properties 'replicaCount' not allowed" in err


def test_unknown_nested_key_is_refused():
    err = render_error("worker.concurency=8")
    assert "additional properties 'concurency' not allowed" in err


@pytest.mark.parametrize("key", ["autoscaling.minReplicas", "autoscaling.maxReplicas"])
def test_replica_bounds_below_one_are_refused(key):
    err = render_error(f"{key}=0")
    assert "/" + key.replace(".", "/") in err
    assert "minimum" in err


def test_min_replicas_above_max_replicas_is_refused_with_a_clear_message():
    err = render_error("autoscaling.minReplicas=25", "autoscaling.maxReplicas=20")
    assert (
        "autoscaling.minReplicas (25) must not be greater than autoscaling.maxReplicas (20)" in err
    )


def test_min_replicas_equal_to_max_replicas_is_allowed():
    hpa = render("autoscaling.minReplicas=4", "autoscaling.maxReplicas=4").one(
        "HorizontalPodAutoscaler"
    )
    assert hpa["spec"]["minReplicas"] == hpa["spec"]["maxReplicas"] == 4


def test_keda_min_above_max_is_refused():
    err = render_error(
        "autoscaling.enabled=false",
        "keda.enabled=true",
        "keda.redis.address=r:6379",
        "keda.minReplicaCount=9",
        "keda.maxReplicaCount=3",
    )
    assert "keda.minReplicaCount (9) must not be greater than keda.maxReplicaCount (3)" in err


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_every_celery_pool_is_accepted(pool):
    args = render(f"worker.pool={pool}").worker_container["args"]
    assert args[args.index("--pool") + 1] == pool


def test_unknown_pool_is_refused():
    err = render_error("worker.pool=processes")
    assert "/worker/pool" in err


def test_unknown_keda_trigger_is_refused():
    err = render_error("keda.trigger=rabbitmq")
    assert "/keda/trigger" in err


def test_missing_connection_secrets_are_refused_with_instructions():
    err = render_error(base=False)
    assert "secrets.existingSecret.name" in err
    assert "secrets.databaseUrl and secrets.brokerUrl" in err


def test_keda_redis_needs_an_address():
    err = render_error("autoscaling.enabled=false", "keda.enabled=true")
    assert "keda.redis.address is required" in err


def test_registry_files_must_include_the_registry_file():
    err = render_error("registry.files.order\\.yaml=steps: []")
    assert 'registry.files must contain the registry file "workflow_registry.yaml"' in err


def test_pdb_with_both_bounds_is_refused():
    err = render_error("podDisruptionBudget.minAvailable=1")
    assert "set only one of minAvailable and maxUnavailable" in err
