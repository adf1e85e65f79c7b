"""The dashboard: server-rendered pages under ``/ui``, signed in with an API token.

Sign-in takes a token (the API's, with its role) and sets a signed session cookie
(HttpOnly, SameSite=Lax); every action is a POST form carrying the session's CSRF token.
Read-only sessions see no action forms and are refused them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from ..definitions.models import WorkflowDefinition
from ..engine.records import Status
from ..errors import (
    FieldError,
    InvalidStateError,
    RuvonError,
    UnknownWorkflowType,
    WorkflowNotFound,
)
from ..persistence.reads import WorkflowSearch
from ..utils.serialization import serialize
from . import forms, graph_svg, sessions, views
from .auth import Principal, Role
from .deps import Server, server
from .graph import RunMarks

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _pretty(value: Any) -> str:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


templates.env.filters.update(duration=_duration, when=_when, pretty=_pretty)
templates.env.globals.update(
    failed_statuses=views.FAILED, statuses=[s.value for s in Status])


class Viewer:
    """The signed-in person: their principal and session (for the CSRF token)."""

    def __init__(self, principal: Principal, session: sessions.Session):
        self.principal = principal
        self.session = session

    @property
    def can_operate(self) -> bool:
        return self.principal.can(Role.OPERATOR)

    @property
    def csrf(self) -> str:
        return self.session.csrf


def viewer(request: Request) -> Viewer:
    srv = server(request)
    session = sessions.decode(request.cookies.get(sessions.COOKIE), srv.config.session_secret)
    by_digest = getattr(srv.authenticator, "by_digest", None)
    principal = by_digest(session.digest) if session and by_digest else None
    if session is None or principal is None:
        raise HTTPException(303, "sign in", headers={
            "Location": "/ui/login?" + urlencode({"next": request.url.path})})
    request.state.principal = principal
    return Viewer(principal, session)


Who = Annotated[Viewer, Depends(viewer)]
Srv = Annotated[Server, Depends(server)]


async def _action(request: Request, who: Viewer) -> dict[str, str]:
    """The form of a POST action, once its CSRF token and the role are checked."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    if not sessions.same_csrf(who.session, form.get("csrf")):
        raise HTTPException(403, "The form's CSRF token does not match this session; "
                                 "reload the page and try again.")
    if not who.can_operate:
        raise HTTPException(403, "This needs the operator role.")
    return form


def render(request: Request, name: str, who: Viewer | None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    srv = server(request)
    return templates.TemplateResponse(request, name, {
        "who": who, "config": srv.config, "message": request.query_params.get("msg"),
        "error": request.query_params.get("error"), **context}, status_code=status_code)


def _back(path: str, **params: str) -> RedirectResponse:
    return RedirectResponse(path + ("?" + urlencode(params) if params else ""), 303)


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", None, next=request.query_params.get("next", "/ui/"))


@router.post("/login")
async def login(request: Request, srv: Srv) -> Response:
    form = await request.form()
    token = str(form.get("token", "")).strip()
    target = str(form.get("next", "/ui/"))
    if not target.startswith("/ui/"):
        target = "/ui/"
    principal = srv.authenticator.authenticate(token) if token else None
    digest_of = getattr(srv.authenticator, "digest_of", None)
    if principal is None or digest_of is None:
        return render(request, "login.html", None, 401, next=target,
                      error="That token is not valid.")
    session = sessions.Session.new(digest_of(token), srv.config.session_hours)
    response = RedirectResponse(target, 303)
    response.set_cookie(sessions.COOKIE, sessions.encode(session, srv.config.session_secret),
                        max_age=int(srv.config.session_hours * 3600), httponly=True,
                        samesite="lax", secure=srv.config.secure_cookies, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request, who: Who) -> Response:
    form = await request.form()
    if not sessions.same_csrf(who.session, str(form.get("csrf", ""))):
        raise HTTPException(403, "CSRF token mismatch")
    response = RedirectResponse("/ui/login", 303)
    response.delete_cookie(sessions.COOKIE, path="/ui")
    return response


@router.get("/")
async def overview(request: Request, who: Who, srv: Srv) -> HTMLResponse:
    return render(request, "overview.html", who, data=await views.overview(srv.client))


@router.get("/overview/live")
async def overview_live(request: Request, who: Who, srv: Srv) -> HTMLResponse:
    return render(request, "_overview_live.html", who, data=await views.overview(srv.client))


def _search(params: dict[str, str], limit: int = 50) -> WorkflowSearch:
    def when(name: str) -> dt.datetime | None:
        value = params.get(name, "").strip()
        if not value:
            return None
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise FieldError(["query", name], f"{value!r} is not a date and time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

    status = params.get("status", "")
    return WorkflowSearch(
        statuses=views.parse_statuses([status]) if status else (),
        workflow_type=params.get("workflow_type") or None, q=params.get("q") or None,
        created_from=when("created_from"), created_to=when("created_to"),
        after=views.decode_cursor(params["cursor"]) if params.get("cursor") else None,
        limit=limit)


@router.get("/workflows")
async def workflows(request: Request, who: Who, srv: Srv) -> HTMLResponse:
    params = dict(request.query_params)
    try:
        records, cursor = await views.page(srv.client, _search(params))
    except FieldError as exc:
        records, cursor, params["error"] = [], None, str(exc)
    keep = {k: v for k, v in params.items() if k not in ("cursor", "msg", "error") and v}
    return render(request, "workflows.html", who, rows=[views.summary(r) for r in records],
                  params=params, next_url=("?" + urlencode({**keep, "cursor": cursor})
                                           if cursor else None),
                  types=sorted(d.workflow_type for d in srv.client.registry),
                  list_error=params.get("error"))


@router.get("/workflows/{workflow_id}")
async def workflow(request: Request, workflow_id: str, who: Who, srv: Srv) -> Response:
    try:
        info = await srv.client.get(workflow_id)
    except WorkflowNotFound as exc:
        return render(request, "not_found.html", who, 404, detail=str(exc))
    history = [views.timeline_row(e) for e in await srv.client.history(workflow_id)]
    step_info = await views.current_step_info(srv.client, workflow_id)
    d = srv.client.registry.workflows.get(info.workflow_type)
    wf = views.workflow(info)
    return render(request, "workflow.html", who, wf=wf, history=history,
                  step_info=step_info, fields=forms.fields(step_info["input_schema"]),
                  definition=views.definition(d) if d else None,
                  graph_svg=graph_svg.svg(d, run_marks(wf, history)) if d else None,
                  finished=info.finished)


def run_marks(wf: dict[str, Any], history: list[dict[str, Any]]) -> RunMarks:
    """What the run's graph shows: the step it is at, the steps it reached (each with
    the status of its last history row), the step it failed at, the runs it started."""
    failed = wf["status"] in views.FAILED
    error = wf["error"] or {}
    marks = RunMarks(current=None if failed else wf["current_step"],
                     failed=(error.get("step") or wf["current_step"]) if failed else None)
    results = (wf["state"] or {}).get("sub_workflow_results") or {}
    child = wf["child"] or {}
    for row in history:
        step = row["step"]
        if not step:
            continue
        marks.reached[step] = row["status"]
        detail = row["detail"] or {}
        started = detail.get("sub_workflow_id") or detail.get("spawned_workflow_id")
        if isinstance(started, str):
            kind = (child.get("workflow_type") if child.get("id") == started
                    else (results.get(started) or {}).get("workflow_type"))
            marks.children[step] = (started, kind)
    return marks


async def _run_action(workflow_id: str, act: Any) -> RedirectResponse:
    path = f"/ui/workflows/{workflow_id}"
    try:
        message = await act()
    except InvalidStateError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                           for e in exc.errors) or str(exc)
        return _back(path, error=fields)
    except RuvonError as exc:
        return _back(path, error=str(exc))
    return _back(path, msg=message)


@router.post("/workflows/{workflow_id}/resume")
async def resume(request: Request, workflow_id: str, who: Who, srv: Srv) -> Response:
    form = await _action(request, who)

    async def act() -> str:
        info = await views.current_step_info(srv.client, workflow_id)
        await srv.client.resume(workflow_id, forms.user_input(info["input_schema"], form),
                                by=who.principal.name)
        return f"Resumed at {info['current_step']}."

    return await _run_action(workflow_id, act)


@router.post("/workflows/{workflow_id}/cancel")
async def cancel(request: Request, workflow_id: str, who: Who, srv: Srv) -> Response:
    form = await _action(request, who)

    async def act() -> str:
        await srv.client.cancel(workflow_id, form.get("reason") or "cancelled from the dashboard",
                                by=who.principal.name)
        return "Cancelled."

    return await _run_action(workflow_id, act)


@router.post("/workflows/{workflow_id}/retry")
async def retry(request: Request, workflow_id: str, who: Who, srv: Srv) -> Response:
    form = await _action(request, who)

    async def act() -> str:
        from_step = form.get("from_step") or None
        await srv.client.retry(workflow_id, from_step, by=who.principal.name)
        return f"Retried from {from_step}." if from_step else "Retried."

    return await _run_action(workflow_id, act)


@router.get("/approvals")
async def approvals(request: Request, who: Who, srv: Srv) -> HTMLResponse:
    records = await (await srv.client.store()).search_workflows(
        WorkflowSearch(statuses=views.WAITING, limit=100))
    waiting = []
    for record in records:
        info = await views.current_step_info(srv.client, record.id)
        waiting.append({"wf": views.workflow(record), "step_info": info,
                        "fields": forms.fields(info["input_schema"])})
    return render(request, "approvals.html", who, waiting=waiting)


@router.post("/approvals/{workflow_id}")
async def approve(request: Request, workflow_id: str, who: Who, srv: Srv) -> Response:
    form = await _action(request, who)
    try:
        info = await views.current_step_info(srv.client, workflow_id)
        await srv.client.resume(workflow_id, forms.user_input(info["input_schema"], form),
                                by=who.principal.name)
    except InvalidStateError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                           for e in exc.errors) or str(exc)
        return _back("/ui/approvals", error=f"{workflow_id}: {fields}")
    except RuvonError as exc:
        return _back("/ui/approvals", error=str(exc))
    return _back("/ui/approvals", msg=f"Resumed {workflow_id}.")


@router.get("/schedules")
async def schedules(request: Request, who: Who, srv: Srv) -> HTMLResponse:
    return render(request, "schedules.html", who, rows=await srv.client.schedules())


@router.get("/dead-letters")
async def dead_letters(request: Request, who: Who, srv: Srv) -> HTMLResponse:
    rows = await srv.client.dead_letters(100)
    for row in rows:
        row["payload_text"] = serialize(row.get("payload"))[:2000]
    return render(request, "dead_letters.html", who, rows=rows)


@router.get("/definitions")
async def definitions(request: Request, who: Who, srv: Srv) -> HTMLResponse:
    return render(request, "definitions.html", who,
                  definitions=[_with_graph(d) for d in srv.client.registry])


def _with_graph(d: WorkflowDefinition) -> dict[str, Any]:
    return {**views.definition(d), "graph": graph_svg.svg(d, prefix=f"{d.workflow_type}-")}


@router.get("/definitions/{workflow_type}")
async def definition(request: Request, workflow_type: str, who: Who, srv: Srv) -> Response:
    try:
        d = srv.client.registry.get(workflow_type)
    except UnknownWorkflowType as exc:
        return render(request, "not_found.html", who, 404, detail=str(exc))
    return render(request, "definitions.html", who, definitions=[_with_graph(d)])
