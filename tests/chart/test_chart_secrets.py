"""Connection secrets are referenced through secretKeyRef, never inlined."""

from __future__ import annotations

import base64

import pytest
from chart_render import (
    BROKER_URL,
    CI_VALUE_FILES,
    DATABASE_URL,
    DB_PASSWORD,
    FULLNAME,
    REDIS_PASSWORD,
    container,
    env_map,
    pod_spec,
    render,
    render_ci,
    workloads,
)

SECRET_ENV = ("DATABASE_URL", "CELERY_BROKER_URL", "FLOWER_BASIC_AUTH")
CI_PASSWORDS = ("ci-db-password", "ci-redis-password", "ci-flower-password")


def _renders():
    yield "test values", render("flower.basicAuth.password=flower-pw-1d2e")
    for name in CI_VALUE_FILES:
        yield name, render_ci(name)


def test_secret_env_is_always_a_secret_key_ref():
    for label, rendered in _renders():
        for obj in workloads(rendered):
            for c in pod_spec(obj)["containers"]:
                for name, entry in env_map(c).items():
                    if name in SECRET_ENV:
                        where = f"{label}: {obj['kind']}/{obj['metadata']['name']} env {name}"
                        assert "value" not in entry, where
                        assert set(entry["valueFrom"]) == {"secretKeyRef"}, where


def test_no_configmap_or_literal_env_holds_a_credential():
    secrets = (DB_PASSWORD, REDIS_PASSWORD, "flower-pw-1d2e", *CI_PASSWORDS)
    for label, rendered in _renders():
        for cm in rendered.of_kind("ConfigMap"):
            text = repr(cm)
            for secret in secrets:
                assert secret not in text, f"{label}: ConfigMap {cm['metadata']['name']} leaks it"
            for value in cm.get("data", {}).values():
                assert not ("://" in value and "@" in value), f"{label}: URL with credentials"
        for obj in workloads(rendered):
            for c in pod_spec(obj)["containers"]:
                literal = repr([e.get("value") for e in c.get("env", [])] + c.get("args", []))
                for secret in secrets:
                    assert secret not in literal, f"{label}: {obj['metadata']['name']} inlines it"


def test_chart_secret_holds_the_urls_from_values():
    rendered = render()
    secret = rendered.get("Secret", FULLNAME)
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded["DATABASE_URL"] == DATABASE_URL
    assert decoded["CELERY_BROKER_URL"] == BROKER_URL
    env = env_map(rendered.worker_container)
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": FULLNAME,
        "key": "DATABASE_URL",
    }
    assert env["CELERY_BROKER_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": FULLNAME,
        "key": "CELERY_BROKER_URL",
    }


def test_existing_secret_is_used_and_no_secret_is_rendered():
    rendered = render_ci("existing-secret-values.yaml")
    assert rendered.count("Secret") == 0
    env = env_map(rendered.worker_container)
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ruvon-connections",
        "key": "database-url",
    }
    assert env["CELERY_BROKER_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ruvon-connections",
        "key": "broker-url",
    }
    migrate = rendered.one("Job")
    assert env_map(container(migrate, "migrate"))["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ruvon-connections",
        "key": "database-url",
    }
    flower = rendered.component("Deployment", "flower")
    assert env_map(container(flower, "flower"))["FLOWER_BASIC_AUTH"]["valueFrom"][
        "secretKeyRef"
    ] == {
        "name": "ruvon-flower-auth",
        "key": "basic-auth",
    }
    annotations = rendered.worker["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" not in annotations


def test_existing_secret_wins_over_urls_in_values():
    rendered = render("secrets.existingSecret.name=managed-elsewhere")
    assert rendered.count("Secret") == 1  # only Flower's basic-auth Secret
    assert rendered.one("Secret")["metadata"]["name"] == f"{FULLNAME}-flower"
    ref = env_map(rendered.worker_container)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "managed-elsewhere", "key": "DATABASE_URL"}


def test_flower_basic_auth_secret_from_values():
    rendered = render("flower.basicAuth.username=ops", "flower.basicAuth.password=flower-pw-1d2e")
    secret = rendered.get("Secret", f"{FULLNAME}-flower")
    assert base64.b64decode(secret["data"]["FLOWER_BASIC_AUTH"]).decode() == "ops:flower-pw-1d2e"


def test_flower_basic_auth_password_is_generated_when_not_given():
    secret = render().get("Secret", f"{FULLNAME}-flower")
    user, password = base64.b64decode(secret["data"]["FLOWER_BASIC_AUTH"]).decode().split(":", 1)
    assert user == "admin"
    assert len(password) >= 16


@pytest.mark.parametrize("values_file", CI_VALUE_FILES)
def test_flower_only_gets_the_broker_url(values_file):
    rendered = render_ci(values_file)
    flower = rendered.component("Deployment", "flower")
    env = env_map(container(flower, "flower"))
    assert "CELERY_BROKER_URL" in env
    assert "DATABASE_URL" not in env
