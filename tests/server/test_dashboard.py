"""The dashboard over a real PostgreSQL and broker: sign-in, every page, the actions
with their CSRF token, and read-only sessions refused them."""

from __future__ import annotations

import re

import httpx
import pytest

from .conftest import ADMIN, OPERATOR, READER, InProcess, auth, order

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def sign_in(api: httpx.AsyncClient, token: str) -> str:
    """Sign in; the session's CSRF token (read from a page's forms)."""
    answer = await api.post("/ui/login", data={"token": token, "next": "/ui/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and token not in cookie
    page = await api.get("/ui/")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


async def test_pages_need_a_session(api: httpx.AsyncClient) -> None:
    page = await api.get("/ui/workflows")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/ui/login?next=%2Fui%2Fworkflows")
    assert (await api.get("/ui/login")).status_code == 200
    wrong = await api.post("/ui/login", data={"token": "wrong-token-0123456789"})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    # An API token in a header is not a dashboard session.
    assert (await api.get("/ui/", headers=auth(ADMIN))).status_code == 303
    api.cookies.set("ruvon_session", "e30.forged")
    assert (await api.get("/ui/")).status_code == 303


async def test_every_page_renders(api: httpx.AsyncClient, runs: InProcess) -> None:
    failed = await runs.run(order("F-1", country="XX"))
    waiting = await runs.run(order("W-1", unit_price=2000), key="big-order")
    await sign_in(api, READER)
    overview = await api.get("/ui/")
    assert "FAILED_ROLLED_BACK" in overview.text and failed[:8] in overview.text
    assert "workers alive" in overview.text
    assert 'href="http://flower.example:5555"' in overview.text
    assert 'href="http://grafana.example/d/ruvon"' in overview.text
    live = await api.get("/ui/overview/live")
    assert live.status_code == 200 and "<html" not in live.text
    listed = await api.get("/ui/workflows", params={"status": "WAITING_HUMAN"})
    assert waiting[:8] in listed.text and failed[:8] not in listed.text
    searched = await api.get("/ui/workflows", params={"q": "big"})
    assert waiting[:8] in searched.text
    bad = await api.get("/ui/workflows", params={"created_from": "yesterday"})
    assert bad.status_code == 200 and "not a date" in bad.text
    detail = await api.get(f"/ui/workflows/{failed}")
    assert "ShippingError" in detail.text and "Timeline" in detail.text
    assert 'id="step-Ship_Order"' in detail.text
    # The definition is drawn as an SVG graph; the failed step is marked in it.
    assert '<svg class="wfgraph"' in detail.text and 'role="img"' in detail.text
    assert 'class="step node r-failed failed" data-step="Ship_Order"' in detail.text
    assert 'data-from="step-Check_Amount" data-to="step-Charge_Payment"' in detail.text
    # A read-only session sees no actions.
    assert "/retry" not in detail.text
    approvals = await api.get("/ui/approvals")
    assert waiting[:8] in approvals.text and "Manager_Approval" in approvals.text
    waiting_page = await api.get(f"/ui/workflows/{waiting}")
    assert 'class="step node r-waiting current" data-step="Manager_Approval"' in waiting_page.text
    for path in ("/ui/schedules", "/ui/dead-letters", "/ui/definitions",
                 "/ui/definitions/OrderFulfillment"):
        assert (await api.get(path)).status_code == 200, path
    definitions = await api.get("/ui/definitions")
    assert definitions.text.count('<svg class="wfgraph"') == 5
    assert 'id="OrderFulfillment-step-Screen_Order-branch-0"' in definitions.text
    assert 'href="/ui/definitions#Shipment"' in definitions.text
    assert (await api.get("/ui/definitions/Nope")).status_code == 404
    assert (await api.get("/ui/workflows/00000000-0000-4000-8000-000000000001")
            ).status_code == 404
    assert (await api.get("/ui/static/app.css")).status_code == 200


async def test_the_timeline_shows_what_each_step_changed(api: httpx.AsyncClient,
                                                        runs: InProcess) -> None:
    done = await runs.run(order("T-1", unit_price=2.5))
    await sign_in(api, READER)
    page = (await api.get(f"/ui/workflows/{done}")).text
    timeline = page[page.index('<ol class="timeline">'):page.index("</ol>")]
    rows = timeline.split("<li ")[1:]
    (validated,) = [r for r in rows if "<strong>Validate_Order</strong>" in r
                    and "COMPLETED" in r]
    assert "changed: amount, log" in validated
    values = validated[validated.index("<details>"):validated.index("</details>")]
    assert "<summary>values</summary>" in values
    assert "&#34;amount&#34;: 2.5" in values or "&quot;amount&quot;: 2.5" in values
    assert "validated 1 item(s)" in values


async def test_actions_need_csrf_and_the_operator_role(api: httpx.AsyncClient,
                                                       runs: InProcess) -> None:
    failed = await runs.run(order("F-2", country="XX"))
    waiting = await runs.run(order("W-2", unit_price=2000))
    csrf = await sign_in(api, READER)
    refused = await api.post(f"/ui/workflows/{failed}/retry", data={"csrf": csrf})
    assert refused.status_code == 403
    csrf = await sign_in(api, OPERATOR)
    no_csrf = await api.post(f"/ui/workflows/{failed}/retry", data={})
    assert no_csrf.status_code == 403
    wrong_csrf = await api.post(f"/ui/workflows/{failed}/retry", data={"csrf": "x" * 32})
    assert wrong_csrf.status_code == 403
    detail = await api.get(f"/ui/workflows/{failed}")
    assert f"/ui/workflows/{failed}/retry" in detail.text
    retried = await api.post(f"/ui/workflows/{failed}/retry",
                             data={"csrf": csrf, "from_step": "Charge_Payment"})
    assert retried.status_code == 303 and "msg=Retried" in retried.headers["location"]
    got = (await api.get(f"/api/v1/workflows/{failed}", headers=auth(READER))).json()
    assert got["status"] == "ACTIVE" and got["current_step"] == "Charge_Payment"
    assert "by olga" in (await api.get(f"/ui/workflows/{failed}")).text

    # The resume form comes from the input model; bad input comes back field by field.
    form = await api.get(f"/ui/workflows/{waiting}")
    assert 'name="field.approved"' in form.text and 'name="field.approver"' in form.text
    bad = await api.post(f"/ui/approvals/{waiting}", data={"csrf": csrf,
                                                           "field.approved": "true"})
    assert bad.status_code == 303 and "approver" in bad.headers["location"]
    unchosen = await api.post(f"/ui/approvals/{waiting}", data={
        "csrf": csrf, "field.approved": "", "field.approver": "dana"})
    assert "approved" in unchosen.headers["location"]  # no answer is chosen by default
    assert '<option value="">choose</option>' in form.text
    page = await api.get(bad.headers["location"])
    assert "approver" in page.text and 'role="alert"' in page.text
    ok = await api.post(f"/ui/approvals/{waiting}", data={
        "csrf": csrf, "field.approved": "true", "field.approver": "dana", "field.note": ""})
    assert ok.status_code == 303 and "msg=Resumed" in ok.headers["location"]
    got = (await api.get(f"/api/v1/workflows/{waiting}", headers=auth(READER))).json()
    assert got["status"] == "ACTIVE" and got["current_step"] == "Manager_Approval"

    cancelled = await api.post(f"/ui/workflows/{waiting}/cancel",
                               data={"csrf": csrf, "reason": "no longer needed"})
    assert cancelled.status_code == 303
    got = (await api.get(f"/api/v1/workflows/{waiting}", headers=auth(READER))).json()
    assert got["status"] == "CANCELLED"
    history = (await api.get(f"/api/v1/workflows/{waiting}/history",
                             headers=auth(READER))).json()["items"]
    assert history[-1]["detail"] == {"reason": "no longer needed", "by": "olga"}
    again = await api.post(f"/ui/workflows/{waiting}/cancel", data={"csrf": csrf})
    assert again.status_code == 303 and "error=" in again.headers["location"]

    out = await api.post("/ui/logout", data={"csrf": csrf})
    assert out.status_code == 303
    assert (await api.get("/ui/")).status_code == 303


async def test_a_removed_token_ends_its_sessions(api: httpx.AsyncClient) -> None:
    from ruvon_workers.server import Role, TokenAuthenticator

    await sign_in(api, OPERATOR)
    assert (await api.get("/ui/")).status_code == 200
    transport = api._transport
    assert isinstance(transport, httpx.ASGITransport)
    server = transport.app.state.server  # type: ignore[attr-defined]
    server.authenticator = TokenAuthenticator({ADMIN: Role.ADMIN})
    assert (await api.get("/ui/")).status_code == 303


async def test_a_parent_links_to_its_sub_workflow(database_url: str) -> None:
    from ruvon_workers import WorkflowBuilder
    from ruvon_workers.client import AsyncClient
    from ruvon_workers.execution import SyncExecutionProvider
    from ruvon_workers.persistence import PostgresPersistenceProvider
    from ruvon_workers.server import TokenAuthenticator, create_app
    from ruvon_workers.server.deps import ServerConfig

    from ..helpers import FLEET_REGISTRY
    from .conftest import TOKENS

    store = PostgresPersistenceProvider(database_url)
    await store.initialize()
    try:
        wf = await WorkflowBuilder.from_registry(FLEET_REGISTRY).create_workflow(
            "Parent", {"value": 21}, persistence_provider=store,
            execution_provider=SyncExecutionProvider())
        while wf.status in ("ACTIVE", "PENDING_SUB_WORKFLOW"):
            await wf.next_step()
        child_id = next(h.detail["sub_workflow_id"] for h in await wf.history()
                        if h.detail and "sub_workflow_id" in h.detail)
    finally:
        await store.close()
    client = AsyncClient(database_url, None, FLEET_REGISTRY)
    app = create_app(client, TokenAuthenticator(TOKENS), ServerConfig(session_secret=b"k" * 32))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:
        await sign_in(http, READER)
        page = await http.get(f"/ui/workflows/{wf.id}")
        assert f'href="/ui/workflows/{child_id}"' in page.text
        # The step that started it links to it in the graph, with its type.
        assert f'<a href="/ui/workflows/{child_id}"><rect' in page.text
        assert "sub-workflow Child" in page.text
        child = await http.get(f"/ui/workflows/{child_id}")
        assert f'href="/ui/workflows/{wf.id}"' in child.text  # and back to its parent
    await client.close()
