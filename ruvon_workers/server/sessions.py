"""Dashboard sessions: a signed cookie (HMAC-SHA256 over its JSON) that names the token
by its digest, the role, an expiry and the session's CSRF token. Nothing is stored on the
server; with several replicas set the same ``RUVON_SESSION_SECRET`` on each."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

COOKIE = "ruvon_session"


@dataclass(frozen=True)
class Session:
    digest: str
    csrf: str
    expires: float

    @classmethod
    def new(cls, digest: str, hours: float) -> Session:
        return cls(digest, secrets.token_urlsafe(24), time.time() + hours * 3600)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(session: Session, secret: bytes) -> str:
    payload = _b64(orjson.dumps({"d": session.digest, "c": session.csrf,
                                 "e": session.expires}))
    signature = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def decode(value: str | None, secret: bytes) -> Session | None:
    """The session in a cookie, or ``None`` when it is missing, forged or expired."""
    if not value or "." not in value:
        return None
    payload, _, signature = value.partition(".")
    expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature, expected):
        return None
    try:
        data: dict[str, Any] = orjson.loads(_unb64(payload))
        session = Session(str(data["d"]), str(data["c"]), float(data["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires > time.time() else None


def same_csrf(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")
