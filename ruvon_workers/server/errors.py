"""The HTTP answer to each refusal, as the ``Client`` raises it: 404 an unknown id (or
workflow type in a path), 409 a workflow not waiting or already finished, 413 input over
``RUVON_MAX_INPUT_BYTES``, 422 invalid input with field-level errors, 503 no database or
broker. Every error body is ``{"detail": message, "errors": [{"loc", "msg", "type"}]}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import (
    ConfigurationError,
    DatabaseError,
    FieldError,
    InputTooLarge,
    InvalidStateError,
    InvalidTransition,
    RuvonError,
    UnknownWorkflowType,
    WorkflowNotFound,
)

log = logging.getLogger("ruvon_workers.server")


def _errors(errors: list[dict[str, Any]], prefix: list[str | int]) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", "value_error"))} for e in errors]


def body(detail: str, status: int, errors: list[dict[str, Any]] | None = None,
         headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "errors": errors or []}, status_code=status,
                        headers=headers)


def refusal(exc: RuvonError, input_loc: list[str | int] | None = None) -> JSONResponse:
    """The response for ``exc``; ``input_loc`` prefixes the field errors of rejected input
    (``["body", "user_input"]``)."""
    if isinstance(exc, FieldError):
        return body(str(exc), 422, [{"loc": exc.loc, "msg": str(exc), "type": exc.kind}])
    if isinstance(exc, WorkflowNotFound):
        return body(str(exc), 404)
    if isinstance(exc, UnknownWorkflowType):
        return body(str(exc), 422, [{"loc": ["body", "workflow_type"], "msg": str(exc),
                                     "type": "unknown_workflow_type"}])
    if isinstance(exc, InvalidTransition):
        return body(str(exc), 409)
    if isinstance(exc, InputTooLarge):
        return body(str(exc), 413)
    if isinstance(exc, InvalidStateError):
        return body(str(exc), 422, _errors(exc.errors, input_loc or ["body"]))
    if isinstance(exc, ConfigurationError | DatabaseError):
        return body(str(exc), 503)
    log.exception("unexpected error", exc_info=exc)
    return body(str(exc), 500)


def install(app: FastAPI) -> None:
    """Every error answers with the same body shape."""

    async def on_ruvon(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RuvonError)
        return refusal(exc, getattr(request.state, "input_loc", None))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        return body("The request is not valid: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors), 422, errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return body(str(exc.detail), exc.status_code, headers=dict(exc.headers or {}))

    app.add_exception_handler(RuvonError, on_ruvon)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
