"""API tokens and roles.

Tokens come from ``RUVON_API_TOKEN`` (one admin token, named ``admin``) and
``RUVON_API_TOKENS_FILE`` (one ``token role [name]`` per line; ``#`` starts a comment).
The name (default: ``token-`` and the start of the token's digest) is what the access log
and the history of a run resumed or retried show; never the token. Each token is kept as
its SHA-256 digest and a presented token is compared with every one of them by
``hmac.compare_digest``, so the time taken says nothing about which token, or how much of
one, matched.

Roles, each allowing what the one before it does:

- ``read-only``: read workflows, history, definitions, schedules, dead letters, fleet;
- ``operator``: also start, resume, cancel and retry;
- ``admin``: also remove schedules.

Ruvon's dashboard names five roles; a tokens file may use them: SUPER_ADMIN and
FLEET_MANAGER are ``admin``, WORKFLOW_OPERATOR is ``operator``, AUDITOR and READ_ONLY are
``read-only``.

:class:`Authenticator` is the seam for another scheme (OIDC): anything that maps a
request's bearer credential to a :class:`Principal`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ConfigurationError

#: Shorter tokens are refused: a token is a password, and guessable ones are common.
MIN_TOKEN_LENGTH = 16


class Role(enum.IntEnum):
    READ_ONLY = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, name: str) -> Role:
        key = name.strip().upper().replace("-", "_")
        if key in RUVON_ROLES:
            return RUVON_ROLES[key]
        try:
            return cls[key]
        except KeyError:
            known = ", ".join([*(r.label for r in cls), *RUVON_ROLES])
            raise ValueError(f"unknown role {name!r}; one of: {known}") from None


#: Ruvon's dashboard roles, as these roles.
RUVON_ROLES = {
    "SUPER_ADMIN": Role.ADMIN,
    "FLEET_MANAGER": Role.ADMIN,
    "WORKFLOW_OPERATOR": Role.OPERATOR,
    "AUDITOR": Role.READ_ONLY,
}


@dataclass(frozen=True)
class Principal:
    """Who made a request: their role and a name for logs (never the token)."""

    name: str
    role: Role

    def can(self, needed: Role) -> bool:
        return self.role >= needed


class Authenticator(Protocol):
    def authenticate(self, credential: str) -> Principal | None: ...


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenAuthenticator:
    """Bearer tokens with roles (and names), compared in constant time."""

    def __init__(self, tokens: dict[str, Role], names: dict[str, str] | None = None):
        for token in tokens:
            if len(token) < MIN_TOKEN_LENGTH:
                raise ConfigurationError(
                    f"An API token is shorter than {MIN_TOKEN_LENGTH} characters; use a "
                    "random one, e.g. `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))'`.")
        names = names or {}
        self._tokens = [(_digest(t), role, names.get(t) or f"token-{_digest(t).hex()[:8]}")
                        for t, role in tokens.items()]

    def __len__(self) -> int:
        return len(self._tokens)

    def authenticate(self, credential: str) -> Principal | None:
        presented = _digest(credential)
        found: Principal | None = None
        for digest, role, name in self._tokens:  # no early exit: every token is compared
            if hmac.compare_digest(presented, digest):
                found = Principal(name, role)
        return found

    def by_digest(self, digest_hex: str) -> Principal | None:
        """The principal whose token has this SHA-256 digest (a dashboard session keeps
        it, so that a token removed from the file ends its sessions)."""
        try:
            presented = bytes.fromhex(digest_hex)
        except ValueError:
            return None
        found: Principal | None = None
        for digest, role, name in self._tokens:
            if hmac.compare_digest(presented, digest):
                found = Principal(name, role)
        return found

    @staticmethod
    def digest_of(credential: str) -> str:
        return _digest(credential).hex()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> TokenAuthenticator:
        """The tokens of ``RUVON_API_TOKEN`` and ``RUVON_API_TOKENS_FILE``; with neither,
        :class:`ConfigurationError` saying how to set one."""
        env = os.environ if environ is None else environ
        tokens: dict[str, Role] = {}
        names: dict[str, str] = {}
        single = env.get("RUVON_API_TOKEN", "").strip()
        if single:
            tokens[single], names[single] = Role.ADMIN, "admin"
        path = env.get("RUVON_API_TOKENS_FILE", "").strip()
        if path:
            for token, role, name in read_tokens_file(Path(path)):
                tokens[token] = role
                if name:
                    names[token] = name
        if not tokens:
            raise ConfigurationError(
                "No API token configured, and the server never runs without one: set "
                "RUVON_API_TOKEN to a random admin token (e.g. `export RUVON_API_TOKEN=$(python "
                "-c 'import secrets; print(secrets.token_urlsafe(32))')`), or "
                "RUVON_API_TOKENS_FILE to a file of `token role` lines (roles: read-only, "
                "operator, admin).")
        return cls(tokens, names)


def read_tokens_file(path: Path) -> list[tuple[str, Role, str | None]]:
    """``token role [name]`` per line; blank lines and ``#`` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read RUVON_API_TOKENS_FILE {path}: {exc.strerror}") from None
    tokens: list[tuple[str, Role, str | None]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (2, 3):
            raise ConfigurationError(
                f"{path}:{number}: expected `token role [name]`, got {len(parts)} field(s)")
        try:
            tokens.append((parts[0], Role.parse(parts[1]), parts[2] if len(parts) == 3 else None))
        except ValueError as exc:
            raise ConfigurationError(f"{path}:{number}: {exc}") from None
    return tokens
