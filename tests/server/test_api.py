"""The REST API against a real PostgreSQL and a real broker: every endpoint, every
refusal the ``Client`` makes (404, 409, 422), and the roles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ruvon_workers.server.auth import Role, TokenAuthenticator

from .conftest import ADMIN, OPERATOR, READER, InProcess, auth, order

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_start_get_and_the_idempotency_key(api: httpx.AsyncClient,
                                                 database_url: str) -> None:
    body = {"workflow_type": "OrderProcessing", "initial_data": order("A-1"),
            "idempotency_key": "order-A-1"}
    first = await api.post("/api/v1/workflows", json=body, headers=auth(OPERATOR))
    assert first.status_code == 201, first.text
    started = first.json()
    assert started["status"] == "ACTIVE" and started["created"] is True
    again = await api.post("/api/v1/workflows", json=body, headers=auth(OPERATOR))
    assert again.status_code == 200 and again.json()["id"] == started["id"]
    assert again.json()["created"] is False
    got = (await api.get(f"/api/v1/workflows/{started['id']}", headers=auth(READER))).json()
    assert {k: got[k] for k in ("id", "workflow_type", "status", "current_step", "error")} == {
        "id": started["id"], "workflow_type": "OrderProcessing", "status": "ACTIVE",
        "current_step": "Validate_Order", "error": None}
    assert got["state"]["order_id"] == "A-1"
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM workflow_executions").fetchone()
    assert rows == (1,)


async def test_ruvon_start_path(api: httpx.AsyncClient) -> None:
    answer = await api.post("/workflows/start", headers=auth(OPERATOR), json={
        "workflow_type": "OrderProcessing", "initial_data": order("R-1")})
    assert answer.status_code == 200, answer.text
    workflow_id = answer.json()["workflow_id"]
    got = await api.get(f"/api/v1/workflows/{workflow_id}", headers=auth(READER))
    assert got.json()["state"]["order_id"] == "R-1"


async def test_start_refusals_are_field_level(api: httpx.AsyncClient) -> None:
    bad = await api.post("/api/v1/workflows", headers=auth(OPERATOR), json={
        "workflow_type": "OrderProcessing", "initial_data": {"order_id": "x"}})
    assert bad.status_code == 422
    locs = {tuple(e["loc"]) for e in bad.json()["errors"]}
    assert ("body", "initial_data", "customer_id") in locs
    assert ("body", "initial_data", "items") in locs
    unknown = await api.post("/api/v1/workflows", headers=auth(OPERATOR), json={
        "workflow_type": "Nope", "initial_data": {}})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["loc"] == ["body", "workflow_type"]
    reserved = await api.post("/api/v1/workflows", headers=auth(OPERATOR), json={
        "workflow_type": "OrderProcessing", "initial_data": order("k"),
        "idempotency_key": "ruvon:mine"})
    assert reserved.status_code == 422 and "idempotency_key" in reserved.json()["detail"]
    malformed = await api.post("/api/v1/workflows", headers=auth(OPERATOR),
                               json={"initial_data": {}})
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["loc"] == ["body", "workflow_type"]


async def test_unknown_id_is_404_everywhere(api: httpx.AsyncClient) -> None:
    missing = "00000000-0000-4000-8000-000000000001"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", f"/api/v1/workflows/{missing}", None),
            ("GET", f"/api/v1/workflows/{missing}/history", None),
            ("GET", f"/api/v1/workflow/{missing}/current_step_info", None),
            ("POST", f"/api/v1/workflows/{missing}/resume", {"user_input": {}}),
            ("POST", f"/api/v1/workflows/{missing}/cancel", {"reason": "x"}),
            ("POST", f"/api/v1/workflows/{missing}/retry", {})]
    for method, path, body in calls:
        answer = await api.request(method, path, json=body, headers=auth(ADMIN))
        assert answer.status_code == 404, (path, answer.text)
        assert missing in answer.json()["detail"]


async def test_resume_checks_the_input_model(api: httpx.AsyncClient, runs: InProcess) -> None:
    waiting = await runs.run(order("W-1", unit_price=2000))
    info = (await api.get(f"/api/v1/workflow/{waiting}/current_step_info",
                          headers=auth(READER))).json()
    assert info["status"] == "WAITING_HUMAN" and info["waiting_for_input"] is True
    assert info["current_step"] == "Manager_Approval"
    assert set(info["input_schema"]["required"]) == {"approved", "approver"}
    plural = await api.get(f"/api/v1/workflows/{waiting}/current_step_info",
                           headers=auth(READER))
    assert plural.json() == info
    bad = await api.post(f"/api/v1/workflows/{waiting}/resume", headers=auth(OPERATOR),
                         json={"user_input": {"approved": "maybe"}})
    assert bad.status_code == 422
    locs = {tuple(e["loc"]) for e in bad.json()["errors"]}
    assert locs == {("body", "user_input", "approved"), ("body", "user_input", "approver")}
    ok = await api.post(f"/api/v1/workflows/{waiting}/resume", headers=auth(OPERATOR),
                        json={"user_input": {"approved": True, "approver": "dana"}})
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "ACTIVE"
    history = (await api.get(f"/api/v1/workflows/{waiting}/history",
                             headers=auth(READER))).json()["items"]
    assert history[-1]["status"] == "RESUMED" and history[-1]["detail"] == {"by": "olga"}
    again = await api.post(f"/api/v1/workflows/{waiting}/resume", headers=auth(OPERATOR),
                           json={"user_input": {"approved": True, "approver": "dana"}})
    assert again.status_code == 409


async def test_cancel_retry_and_history(api: httpx.AsyncClient, runs: InProcess) -> None:
    failed = await runs.run(order("F-1", country="XX"))
    got = (await api.get(f"/api/v1/workflows/{failed}", headers=auth(READER))).json()
    assert got["status"] == "FAILED_ROLLED_BACK" and got["error"]["step"] == "Ship_Order"
    history = (await api.get(f"/api/v1/workflows/{failed}/history",
                             headers=auth(READER))).json()["items"]
    assert history[0]["status"] == "CREATED"
    assert any(h["step"] == "Ship_Order" and h["status"] == "FAILED" for h in history)
    cancel = await api.post(f"/api/v1/workflows/{failed}/cancel", headers=auth(OPERATOR),
                            json={"reason": "too late"})
    assert cancel.status_code == 409
    bad_step = await api.post(f"/api/v1/workflows/{failed}/retry", headers=auth(OPERATOR),
                              json={"from_step": "Nope"})
    assert bad_step.status_code == 422
    assert bad_step.json()["errors"][0]["loc"] == ["body", "from_step"]
    retried = await api.post(f"/api/v1/workflows/{failed}/retry", headers=auth(OPERATOR),
                             json={"from_step": "Charge_Payment"})
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "ACTIVE"
    assert retried.json()["current_step"] == "Charge_Payment"
    history = (await api.get(f"/api/v1/workflows/{failed}/history",
                             headers=auth(READER))).json()["items"]
    assert history[-1]["status"] == "RETRIED"
    assert history[-1]["detail"] == {"from_status": "FAILED_ROLLED_BACK", "by": "olga"}
    cancelled = await api.post(f"/api/v1/workflows/{failed}/cancel", headers=auth(OPERATOR),
                               json={"reason": "changed mind"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    history = (await api.get(f"/api/v1/workflows/{failed}/history",
                             headers=auth(READER))).json()["items"]
    assert history[-1]["status"] == "CANCELLED"
    assert history[-1]["detail"] == {"reason": "changed mind", "by": "olga"}
    again = await api.post(f"/api/v1/workflows/{failed}/retry", headers=auth(OPERATOR))
    assert again.status_code in (200, 409)


async def test_history_says_what_each_step_changed(api: httpx.AsyncClient,
                                                   runs: InProcess) -> None:
    done = await runs.run(order("H-1", unit_price=2.5))
    history = (await api.get(f"/api/v1/workflows/{done}/history",
                             headers=auth(READER))).json()["items"]
    validated = next(h for h in history
                     if h["step"] == "Validate_Order" and h["status"] == "COMPLETED")
    assert validated["detail"] == {"changed": {"amount": 2.5,
                                               "log": ["validated 1 item(s)"]}}


async def test_list_filters_and_cursor(api: httpx.AsyncClient, runs: InProcess) -> None:
    done = [await runs.run(order(f"C-{i}"), key=f"batch-{i}") for i in range(5)]
    waiting = await runs.run(order("W-9", unit_price=5000), key="big-one")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/workflows", params=params,
                              headers=auth(READER))).json()
        assert len(page["items"]) <= 2 and "state" not in page["items"][0]
        seen += [w["id"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [waiting, *reversed(done)]

    async def ids(**params: Any) -> list[str]:
        answer = await api.get("/api/v1/workflows", params=params, headers=auth(READER))
        assert answer.status_code == 200, answer.text
        return [w["id"] for w in answer.json()["items"]]

    assert await ids(status="COMPLETED") == list(reversed(done))
    assert await ids(status="paused") == [waiting]  # Ruvon's alias for WAITING_HUMAN
    assert await ids(status="WAITING_HUMAN,COMPLETED", limit=1) == [waiting]
    assert await ids(workflow_type="OrderFulfillment") == []
    assert await ids(q="big") == [waiting]
    assert await ids(q=waiting) == [waiting]
    assert await ids(q=waiting[:6]) == [w for w in [waiting, *reversed(done)]
                                        if w.startswith(waiting[:6])]
    assert await ids(q="batch-_") == []  # LIKE wildcards are literal
    assert await ids(created_from="2000-01-01T00:00:00Z", created_to="2001-01-01T00:00:00Z"
                     ) == []
    assert len(await ids(created_from="2000-01-01T00:00:00Z")) == 6
    for params in ({"status": "DONE"}, {"cursor": "garbage"}, {"limit": 201},
                   {"limit": 0}):
        refused = await api.get("/api/v1/workflows", params=params, headers=auth(READER))
        assert refused.status_code == 422, params


async def test_definitions_schedules_dead_letters_fleet(api: httpx.AsyncClient,
                                                        runs: InProcess) -> None:
    defs = (await api.get("/api/v1/definitions", headers=auth(READER))).json()["items"]
    order_def = next(d for d in defs if d["workflow_type"] == "OrderProcessing")
    check = next(s for s in order_def["steps"] if s["name"] == "Check_Amount")
    assert check["routes"][0] == {"condition": "state.approval_required",
                                  "target": "Manager_Approval", "default": False}
    assert check["routes"][1]["target"] == "Charge_Payment"
    approval = next(s for s in order_def["steps"] if s["name"] == "Manager_Approval")
    assert set(approval["input_schema"]["required"]) == {"approved", "approver"}
    one = await api.get("/api/v1/definitions/OrderFulfillment", headers=auth(READER))
    assert one.status_code == 200
    assert {s["type"] for s in one.json()["steps"]} >= {"PARALLEL", "LOOP", "CRON_SCHEDULE"}
    screen = next(s for s in one.json()["steps"] if s["name"] == "Screen_Order")
    assert len(screen["tasks"]) == 3  # a PARALLEL step's branches
    missing = await api.get("/api/v1/definitions/Nope", headers=auth(READER))
    assert missing.status_code == 404
    assert (await api.get("/api/v1/schedules", headers=auth(READER))).json() == {"items": []}
    assert (await api.delete("/api/v1/schedules/none", headers=auth(ADMIN))).status_code == 404
    assert (await api.get("/api/v1/dead-letters", headers=auth(READER))).json() == {
        "items": []}
    assert (await api.get("/api/v1/dead-letters", params={"limit": 501},
                          headers=auth(READER))).status_code == 422
    fleet = (await api.get("/api/v1/fleet", headers=auth(READER))).json()
    assert fleet["workers"] == [] and fleet["workers_alive"] == 0
    assert fleet["queues"]["ruvon"] == 0 and fleet["broker_reachable"] is True
    await runs.run(order("F-2", country="XX"))
    overview = (await api.get("/api/v1/overview", headers=auth(READER))).json()
    assert overview["counts"] == {"FAILED_ROLLED_BACK": 1}
    assert len(overview["recent_failures"]) == 1
    assert sum(m["started"] for m in overview["activity"]) == 1


async def test_roles_are_enforced(api: httpx.AsyncClient, runs: InProcess) -> None:
    start = {"workflow_type": "OrderProcessing", "initial_data": order("X")}
    no_token = await api.get("/api/v1/workflows")
    assert no_token.status_code == 401 and no_token.headers["www-authenticate"] == "Bearer"
    wrong = await api.get("/api/v1/workflows", headers=auth("not-a-token-at-all-000"))
    assert wrong.status_code == 401
    basic = await api.get("/api/v1/workflows", headers={"Authorization": f"Basic {READER}"})
    assert basic.status_code == 401
    assert (await api.post("/api/v1/workflows", json=start,
                           headers=auth(READER))).status_code == 403
    assert (await api.post("/workflows/start", json=start,
                           headers=auth(READER))).status_code == 403
    waiting = await runs.run(order("W-2", unit_price=2000))
    actions: list[tuple[str, dict[str, Any]]] = [
        ("resume", {"user_input": {}}), ("cancel", {}), ("retry", {})]
    for action, body in actions:
        refused = await api.post(f"/api/v1/workflows/{waiting}/{action}", json=body,
                                 headers=auth(READER))
        assert refused.status_code == 403, action
        assert "operator" in refused.json()["detail"]
    assert (await api.delete("/api/v1/schedules/x",
                             headers=auth(OPERATOR))).status_code == 403
    who = (await api.get("/api/v1/whoami", headers=auth(OPERATOR))).json()
    assert who["role"] == "operator"
    assert (await api.post("/api/v1/workflows", json=start,
                           headers=auth(ADMIN))).status_code == 201


async def test_health_metrics_and_openapi(api: httpx.AsyncClient,
                                          caplog: pytest.LogCaptureFixture) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/health")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).json() == {"status": "ready"}
    with caplog.at_level("INFO", logger="ruvon_workers.server.access"):
        await api.get("/api/v1/workflows", headers=auth(READER))
    line = next(r.getMessage() for r in caplog.records
                if r.name == "ruvon_workers.server.access")
    assert '"route":"/api/v1/workflows"' in line and '"status":200' in line
    assert '"role":"read-only"' in line and READER not in line
    metrics = (await api.get("/metrics")).text
    assert ('ruvon_http_requests_total{method="GET",route="/api/v1/workflows",status="200"}'
            in metrics)
    assert "ruvon_http_request_duration_seconds_bucket" in metrics
    spec = (await api.get("/openapi.json")).json()
    for path in ("/api/v1/workflows", "/api/v1/workflows/{workflow_id}/resume",
                 "/api/v1/workflow/{workflow_id}/current_step_info", "/workflows/start"):
        assert path in spec["paths"], path
    assert (await api.get("/docs")).status_code == 200


def test_tokens_file_roles_and_refusals(tmp_path: Path) -> None:
    from ruvon_workers.errors import ConfigurationError

    path = tmp_path / "tokens"
    path.write_text("# ops\nreader-0123456789abcdef  read-only\n"
                    "auditor-0123456789abcdef AUDITOR\n"
                    "manager-0123456789abcdef FLEET_MANAGER  # Ruvon's role\n"
                    "operator-0123456789abcdef WORKFLOW_OPERATOR olga\n")
    tokens = TokenAuthenticator.from_env({"RUVON_API_TOKENS_FILE": str(path),
                                          "RUVON_API_TOKEN": "single-admin-0123456789"})
    roles = {t: tokens.authenticate(t) for t in (
        "reader-0123456789abcdef", "auditor-0123456789abcdef", "manager-0123456789abcdef",
        "operator-0123456789abcdef", "single-admin-0123456789")}
    assert [p.role if p else None for p in roles.values()] == [
        Role.READ_ONLY, Role.READ_ONLY, Role.ADMIN, Role.OPERATOR, Role.ADMIN]
    assert tokens.authenticate("reader-0123456789abcde") is None
    named = {t: p.name for t, p in roles.items() if p}
    assert named["operator-0123456789abcdef"] == "olga"
    assert named["single-admin-0123456789"] == "admin"
    assert named["reader-0123456789abcdef"].startswith("token-")
    with pytest.raises(ConfigurationError, match="RUVON_API_TOKEN"):
        TokenAuthenticator.from_env({})
    path.write_text("t-0123456789abcdefgh superuser\n")
    with pytest.raises(ConfigurationError, match=r"tokens:1: unknown role 'superuser'"):
        TokenAuthenticator.from_env({"RUVON_API_TOKENS_FILE": str(path)})
    path.write_text("t-0123456789abcdefgh admin dana extra\n")
    with pytest.raises(ConfigurationError, match=r"expected `token role \[name\]`"):
        TokenAuthenticator.from_env({"RUVON_API_TOKENS_FILE": str(path)})
    with pytest.raises(ConfigurationError, match="shorter than 16"):
        TokenAuthenticator({"short": Role.ADMIN})


async def test_large_input_and_no_broker(database_url: str, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    from ruvon_workers.client import AsyncClient
    from ruvon_workers.server import create_app

    from .conftest import REGISTRY, TOKENS

    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setenv("RUVON_MAX_INPUT_BYTES", "1000")
    client = AsyncClient(database_url, None, REGISTRY)
    app = create_app(client, TokenAuthenticator(TOKENS))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:
        big = {**order("B-1"), "customer_id": "c" * 2000}
        too_big = await http.post("/api/v1/workflows", headers=auth(OPERATOR), json={
            "workflow_type": "OrderProcessing", "initial_data": big})
        assert too_big.status_code == 413 and "RUVON_MAX_INPUT_BYTES" in too_big.text
        no_broker = await http.post("/api/v1/workflows", headers=auth(OPERATOR), json={
            "workflow_type": "OrderProcessing", "initial_data": order("B-2")})
        assert no_broker.status_code == 503 and "CELERY_BROKER_URL" in no_broker.text
        # Reading needs the database alone.
        assert (await http.get("/api/v1/workflows", headers=auth(READER))).status_code == 200
    await client.close()


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from ruvon_workers.server.app import config_from_env

    monkeypatch.setenv("RUVON_FLOWER_URL", "https://flower.example")
    monkeypatch.setenv("RUVON_GRAFANA_URL", "https://grafana.example/d/ruvon")
    monkeypatch.setenv("RUVON_SESSION_SECRET", "shared-between-replicas")
    config = config_from_env()
    assert config.flower_url == "https://flower.example"
    assert config.grafana_url == "https://grafana.example/d/ruvon"
    assert config.session_secret == b"shared-between-replicas"
