"""A Celery consumer that logs, records and drops what it cannot handle.

The stock consumer can exit on a malformed message (an unknown task without an ``id``
header, a body that is not a mapping). Here every such message is logged, written to
``ruvon_dead_letters`` and rejected, and the worker keeps serving.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from celery.worker.consumer import Consumer
from psycopg.types.json import Jsonb

from ..persistence import sql
from ..persistence.postgres import configure_json
from ..settings import database_url

log = logging.getLogger("ruvon.consumer")
_db_lock = threading.Lock()
_MAX_BODY = 2000


def _body_excerpt(message: Any) -> str:
    body = getattr(message, "body", b"")
    if isinstance(body, bytes | bytearray | memoryview):
        body = bytes(body).decode("utf-8", "replace")
    return str(body)[:_MAX_BODY]


def record_dead_letter(task: str | None, workflow_id: str | None, reason: str,
                       payload: Any) -> None:
    """Insert a dead letter with a short-lived connection; never raises."""
    url = database_url(required=False)
    if not url:
        return
    try:
        with _db_lock, psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            configure_json(conn)
            conn.execute(sql.query("insert_dead_letter"), {
                "task": task, "workflow_id": workflow_id, "reason": reason[:2000],
                "payload": Jsonb(payload)})
    except Exception as exc:
        log.warning("could not record dead letter (%s): %s", reason, exc)


def _reject(message: Any) -> None:
    try:
        message.reject(requeue=False)
    except Exception as exc:
        log.warning("could not reject message: %s", exc)


class SafeConsumer(Consumer):
    def _refuse(self, message: Any, reason: str) -> None:
        headers = getattr(message, "headers", None) or {}
        task = headers.get("task") if isinstance(headers, dict) else None
        log.error("dropped a message the fleet cannot handle: %s (task=%s)", reason, task)
        record_dead_letter(task, None, reason, {"headers": _safe(headers),
                                                "body": _body_excerpt(message)})

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._refuse(message, "unknown message format (not a Celery task message)")
        _reject(message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        headers = getattr(message, "headers", None) or {}
        self._refuse(message, f"unknown task {headers.get('task')!r}: not registered on "
                              "this fleet (check the workflow type and step name)")
        _reject(message)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._refuse(message, f"invalid task message: {exc}")
        _reject(message)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._refuse(message, f"cannot decode message body ({message.content_type}): {exc}")
        _reject(message)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handler = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> Any:
            try:
                return handler(message)
            except Exception as exc:
                if isinstance(exc, self.connection_errors):
                    raise
                self._refuse(message, f"malformed message: {type(exc).__name__}: {exc}")
                _reject(message)
                return None

        return on_task_received


def _safe(value: Any) -> Any:
    try:
        from ..utils.serialization import serialize

        serialize(value)
        return value
    except TypeError:
        return repr(value)[:_MAX_BODY]
