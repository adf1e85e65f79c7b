"""What a request handler is given: the server's shared objects, and the caller's
:class:`~.auth.Principal` once their role allows the route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.exceptions import HTTPException

from ..client import AsyncClient
from .auth import Authenticator, Principal, Role


@dataclass
class ServerConfig:
    """What the server was started with, besides the environment the ``Client`` reads."""

    flower_url: str | None = None
    grafana_url: str | None = None
    #: Signs dashboard sessions; a random one (sessions end on restart) when unset.
    session_secret: bytes = b""
    session_hours: float = 8.0
    secure_cookies: bool = False
    max_page: int = 200
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Server:
    client: AsyncClient
    authenticator: Authenticator
    config: ServerConfig


def server(request: Request) -> Server:
    found: Server = request.app.state.server
    return found


def bearer(request: Request) -> Principal:
    """The principal of the request's ``Authorization: Bearer`` token; 401 without one."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and credential.strip():
        principal = server(request).authenticator.authenticate(credential.strip())
    if principal is None:
        raise HTTPException(401, "A valid API token is required: send "
                                 "`Authorization: Bearer <token>`.",
                            headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal
    return principal


def require(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller's principal when their role is at least ``role``, else
    401 (no valid token) or 403 (a token whose role is lower)."""

    async def dependency(request: Request) -> Principal:
        principal = bearer(request)
        if not principal.can(role):
            raise HTTPException(403, f"This needs the {role.label} role; the token has "
                                     f"{principal.role.label}.")
        return principal

    return dependency
