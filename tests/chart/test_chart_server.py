"""The server (REST API and dashboard): its Deployment, Service, Ingress, token Secret
and NetworkPolicy rule."""

from __future__ import annotations

import base64

from chart_render import (
    CHART_DIR,
    CI_VALUES_DIR,
    FULLNAME,
    HELM,
    container,
    env_map,
    pod_spec,
    render,
    render_ci,
    render_error,
    run_tool,
)

SERVER = f"{FULLNAME}-server"


def test_off_by_default():
    rendered = render()
    assert not [d for d in rendered.docs if "server" in d["metadata"]["name"]]
    policy = rendered.one("NetworkPolicy")["spec"]
    assert all(r["ports"][0]["port"] != 8000 for r in policy["ingress"])


def test_deployment_runs_the_server_with_probes_and_secrets():
    rendered = render("server.enabled=true")
    deployment = rendered.get("Deployment", SERVER)
    c = container(deployment, "server")
    assert c["args"] == ["server", "--host", "0.0.0.0", "--port", "8000"]
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = env_map(c)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    assert env["RUVON_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": SERVER, "key": "RUVON_API_TOKEN"}
    assert env["RUVON_SESSION_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": SERVER, "key": "RUVON_SESSION_SECRET"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod_spec(deployment)["automountServiceAccountToken"] is False
    service = rendered.get("Service", SERVER)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "server"
    assert service["spec"]["ports"][0]["port"] == 8000
    policy = rendered.one("NetworkPolicy")["spec"]
    rule = next(r for r in policy["ingress"] if r["ports"][0]["port"] == 8000)
    assert "from" not in rule


def test_token_secret_is_generated_or_given():
    generated = render("server.enabled=true").get("Secret", SERVER)["data"]
    token = base64.b64decode(generated["RUVON_API_TOKEN"]).decode()
    assert len(token) == 40 and token.isalnum()
    assert len(base64.b64decode(generated["RUVON_SESSION_SECRET"])) == 48
    given = render("server.enabled=true",
                   "server.tokens.adminToken=my-admin-token-0123456789").get("Secret", SERVER)
    assert base64.b64decode(given["data"]["RUVON_API_TOKEN"]) == b"my-admin-token-0123456789"
    # Tokens never appear outside the Secret.
    docs = render("server.enabled=true", "server.tokens.adminToken=my-admin-token-0123456789")
    for doc in docs.docs:
        if doc["kind"] != "Secret":
            assert "my-admin-token-0123456789" not in str(doc), doc["kind"]


def test_existing_tokens_file():
    rendered = render_ci("existing-secret-values.yaml")
    assert rendered.count("Secret") == 0
    deployment = rendered.component("Deployment", "server")
    c = container(deployment, "server")
    env = env_map(c)
    assert env["RUVON_API_TOKENS_FILE"]["value"] == "/etc/ruvon-server/tokens"
    assert "RUVON_API_TOKEN" not in env
    assert env["RUVON_SESSION_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "ruvon-api-tokens", "key": "session-key", "optional": True}
    assert {"name": "tokens", "mountPath": "/etc/ruvon-server", "readOnly": True} in c[
        "volumeMounts"]
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "tokens")
    assert volume["secret"] == {"secretName": "ruvon-api-tokens",
                                "items": [{"key": "tokens-file", "path": "tokens"}]}


def test_all_on_ingress_links_and_cookies():
    rendered = render_ci("all-on-values.yaml")
    ingress = rendered.get("Ingress", "ruvon-server")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "ruvon.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "ruvon-server", "port": {"number": 8000}}
    deployment = rendered.get("Deployment", "ruvon-server")
    assert deployment["spec"]["replicas"] == 2
    env = env_map(container(deployment, "server"))
    assert env["RUVON_FLOWER_URL"]["value"] == "https://flower.ruvon.example.com"
    assert env["RUVON_GRAFANA_URL"]["value"] == "https://grafana.example.com/d/ruvon-workers"
    assert env["RUVON_SECURE_COOKIES"]["value"] == "true"


def test_install_notes_say_where_the_dashboard_and_token_are():
    proc = run_tool([str(HELM), "install", "ruvon", str(CHART_DIR), "--dry-run=client",
                     "--namespace", "ruvon-test", "--values",
                     str(CI_VALUES_DIR / "default-values.yaml"), "--set", "server.enabled=true"])
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "port-forward service/ruvon-ruvon-workers-server 8000:8000" in notes
    assert "get secret ruvon-ruvon-workers-server -o jsonpath='{.data.RUVON_API_TOKEN}'" in notes


def test_schema_refuses_weak_or_unknown_values():
    assert "adminToken" in render_error("server.enabled=true", "server.tokens.adminToken=short")
    assert "sessionSecret" in render_error("server.enabled=true", "server.sessionSecret=short")
    assert "additional" in render_error("server.enabled=true", "server.tokenz=x").lower()
    assert "flowerUrl" in render_error("server.flowerUrl=flower.example.com")
