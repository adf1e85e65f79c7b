"""``ruvon-workers server``: a REST API and a dashboard over the workflows in PostgreSQL.

A producer and a reader, never a worker: it sends through the broker as the ``Client``
does and reads the store. ``create_app`` builds the ASGI application.
"""

from __future__ import annotations

from .app import create_app
from .auth import Role, TokenAuthenticator

__all__ = ["Role", "TokenAuthenticator", "create_app"]
