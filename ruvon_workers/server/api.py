"""The REST API under ``/api/v1`` (and Ruvon's ``POST /workflows/start``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from ..errors import FieldError, UnknownWorkflowType
from ..persistence.reads import WorkflowSearch
from . import views
from .auth import Principal, Role
from .deps import Server, require, server
from .errors import body

Reader = Annotated[Principal, Depends(require(Role.READ_ONLY))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Srv = Annotated[Server, Depends(server)]

api = APIRouter(prefix="/api/v1", tags=["workflows"])
ruvon = APIRouter(tags=["ruvon"])


class StartRequest(BaseModel):
    workflow_type: str
    initial_data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(
        default=None, description="Starting again with the same key (for the same workflow "
                                  "type) answers 200 with the workflow it started.")


class ResumeRequest(BaseModel):
    user_input: dict[str, Any] = Field(default_factory=dict)


class CancelRequest(BaseModel):
    reason: str = "cancelled"


class RetryRequest(BaseModel):
    from_step: str | None = None


class RuvonStartRequest(BaseModel):
    workflow_type: str
    initial_data: dict[str, Any] = Field(default_factory=dict)


@api.post("/workflows", status_code=201, summary="Start a workflow",
          responses={200: {"description": "The idempotency key already named a workflow"}})
async def start(body: StartRequest, response: Response, srv: Srv,
                _: Operator, request: Request) -> dict[str, Any]:
    request.state.input_loc = ["body", "initial_data"]
    info, created = await srv.client.start_info(body.workflow_type, body.initial_data,
                                                body.idempotency_key)
    if not created:
        response.status_code = 200
    return {**views.workflow(info), "created": created}


@ruvon.post("/workflows/start", summary="Start a workflow (Ruvon's path)")
async def ruvon_start(body: RuvonStartRequest, srv: Srv, _: Operator,
                      request: Request) -> dict[str, Any]:
    request.state.input_loc = ["body", "initial_data"]
    info, _created = await srv.client.start_info(body.workflow_type, body.initial_data)
    return {"workflow_id": info.id, "status": info.status}


@api.get("/workflows", summary="List workflows, newest first")
async def list_workflows(
        srv: Srv, _: Reader,
        status: Annotated[list[str], Query(description="Repeat, or comma-separate")] = [],  # noqa: B006
        workflow_type: str | None = None,
        created_from: dt.datetime | None = None,
        created_to: dt.datetime | None = None,
        q: Annotated[str | None, Query(description="An id, an id prefix, or a key prefix",
                                       max_length=200)] = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    search = WorkflowSearch(
        statuses=views.parse_statuses(status), workflow_type=workflow_type,
        created_from=created_from, created_to=created_to, q=q or None,
        after=views.decode_cursor(cursor) if cursor else None, limit=limit)
    records, next_cursor = await views.page(srv.client, search)
    return {"items": [views.summary(r) for r in records], "next_cursor": next_cursor}


@api.get("/workflows/{workflow_id}", summary="A workflow, with its state")
async def get_workflow(workflow_id: str, srv: Srv, _: Reader) -> dict[str, Any]:
    return views.workflow(await srv.client.get(workflow_id))


@api.post("/workflows/{workflow_id}/resume", summary="Give a waiting workflow its input")
async def resume(workflow_id: str, body: ResumeRequest, srv: Srv, who: Operator,
                 request: Request) -> dict[str, Any]:
    request.state.input_loc = ["body", "user_input"]
    await srv.client.resume(workflow_id, body.user_input, by=who.name)
    return views.workflow(await srv.client.get(workflow_id))


@api.post("/workflows/{workflow_id}/cancel", summary="Cancel a workflow")
async def cancel(workflow_id: str, srv: Srv, who: Operator,
                 body: CancelRequest | None = None) -> dict[str, Any]:
    await srv.client.cancel(workflow_id, (body or CancelRequest()).reason, by=who.name)
    return views.workflow(await srv.client.get(workflow_id))


@api.post("/workflows/{workflow_id}/retry", summary="Retry a failed workflow")
async def retry(workflow_id: str, srv: Srv, who: Operator,
                body: RetryRequest | None = None) -> dict[str, Any]:
    from_step = (body or RetryRequest()).from_step
    if from_step is not None:
        info = await srv.client.get(workflow_id)
        d = srv.client.registry.workflows.get(info.workflow_type)
        if d is not None and not d.has_step(from_step):
            raise FieldError(["body", "from_step"],
                             f"Workflow '{info.workflow_type}' has no step '{from_step}'; "
                             f"its steps: {', '.join(s.name for s in d.all_steps)}")
    await srv.client.retry(workflow_id, from_step, by=who.name)
    return views.workflow(await srv.client.get(workflow_id))


@api.get("/workflows/{workflow_id}/history", summary="A workflow's step history")
async def history(workflow_id: str, srv: Srv, _: Reader) -> dict[str, Any]:
    return {"items": [views.history_row(e) for e in await srv.client.history(workflow_id)]}


@api.get("/workflows/{workflow_id}/current_step_info",
         summary="The input schema of the step a workflow waits at")
@api.get("/workflow/{workflow_id}/current_step_info",
         summary="The input schema of the step a workflow waits at (Ruvon's path)")
async def current_step_info(workflow_id: str, srv: Srv, _: Reader) -> dict[str, Any]:
    return await views.current_step_info(srv.client, workflow_id)


@api.get("/definitions", summary="Workflow definitions, with their steps and routes")
async def definitions(srv: Srv, _: Reader) -> dict[str, Any]:
    return {"items": [views.definition(d) for d in srv.client.registry]}


@api.get("/definitions/{workflow_type}", summary="One workflow definition")
async def get_definition(workflow_type: str, srv: Srv, _: Reader) -> Any:
    try:
        d = srv.client.registry.get(workflow_type)
    except UnknownWorkflowType as exc:
        return body(str(exc), 404)
    return views.definition(d)


@api.get("/schedules", summary="CRON schedules")
async def schedules(srv: Srv, _: Reader) -> dict[str, Any]:
    return {"items": await srv.client.schedules()}


@api.delete("/schedules/{name}", status_code=204, summary="Remove a schedule")
async def remove_schedule(name: str, srv: Srv, _: Admin) -> Response:
    if not await srv.client.remove_schedule(name):
        return body(f"No schedule named '{name}'.", 404)
    return Response(status_code=204)


@api.get("/dead-letters", summary="Messages the fleet refused, newest first")
async def dead_letters(srv: Srv, _: Reader,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    return {"items": await srv.client.dead_letters(limit)}


@api.get("/fleet", summary="Workers alive and queue depth")
async def fleet(srv: Srv, _: Reader) -> dict[str, Any]:
    return await views.fleet(srv.client)


@api.get("/overview", summary="Counts by status, activity, recent failures, the fleet")
async def overview(srv: Srv, _: Reader) -> dict[str, Any]:
    return await views.overview(srv.client)


@api.get("/whoami", summary="The role of the token")
async def whoami(principal: Reader) -> dict[str, Any]:
    return {**dataclasses.asdict(principal), "role": principal.role.label}
