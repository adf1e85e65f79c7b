"""The ASGI application: the API, the dashboard, health, metrics and access logs."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from .. import __version__
from ..client import AsyncClient
from ..utils.serialization import serialize
from . import api, dashboard, errors
from .auth import Authenticator, TokenAuthenticator
from .deps import Server, ServerConfig

access_log = logging.getLogger("ruvon_workers.server.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class HttpMetrics:
    """Request counts and latency by method, route template and status (a registry of
    the server's own, served at ``/metrics``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ruvon_http_requests", "HTTP requests handled",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("ruvon_http_request_duration_seconds",
                                 "HTTP request latency", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)


def config_from_env() -> ServerConfig:
    secret = os.getenv("RUVON_SESSION_SECRET", "")
    return ServerConfig(
        flower_url=os.getenv("RUVON_FLOWER_URL") or None,
        grafana_url=os.getenv("RUVON_GRAFANA_URL") or None,
        session_secret=secret.encode() if secret else secrets.token_bytes(32),
        secure_cookies=os.getenv("RUVON_SECURE_COOKIES", "").lower() in ("1", "true", "yes"),
    )


def create_app(client: AsyncClient | None = None, authenticator: Authenticator | None = None,
               config: ServerConfig | None = None) -> FastAPI:
    """The server. Each argument defaults from the environment: the ``Client``'s
    (``DATABASE_URL``, ``CELERY_BROKER_URL``, ``RUVON_REGISTRY``), the tokens
    (``RUVON_API_TOKEN``, ``RUVON_API_TOKENS_FILE``: refused when there are none) and
    ``RUVON_FLOWER_URL``, ``RUVON_GRAFANA_URL``, ``RUVON_SESSION_SECRET``."""
    authenticator = authenticator or TokenAuthenticator.from_env()
    client = client or AsyncClient()
    config = config or config_from_env()
    if not config.session_secret:
        config.session_secret = secrets.token_bytes(32)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.close()

    app = FastAPI(title="Ruvon Workers", version=__version__, lifespan=lifespan,
                  description="Start, inspect and steer workflows. Every route needs "
                              "`Authorization: Bearer <token>`.")
    app.state.server = Server(client, authenticator, config)
    metrics = HttpMetrics()
    app.state.metrics = metrics
    errors.install(app)

    @app.middleware("http")
    async def observe(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(request.scope.get("route"), "path", "unmatched")
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(elapsed)
            principal = getattr(request.state, "principal", None)
            access_log.info(serialize({
                "event": "request", "method": request.method, "path": request.url.path,
                "route": route, "status": status, "duration_ms": round(elapsed * 1000, 2),
                "principal": principal.name if principal else None,
                "role": principal.role.label if principal else None,
                "client": request.client.host if request.client else None}))

    @app.get("/healthz", tags=["health"], summary="The process answers")
    @app.get("/health", tags=["health"], summary="The process answers (Ruvon's path)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="PostgreSQL answers")
    async def readyz() -> Response:
        try:
            store = await client.store()
            await store.load_workflow("00000000-0000-0000-0000-000000000000")
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def root() -> Any:
        return RedirectResponse("/ui/", status_code=307)

    app.include_router(api.api)
    app.include_router(api.ruvon)
    app.include_router(dashboard.router)
    app.mount("/ui/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="static")
    return app
