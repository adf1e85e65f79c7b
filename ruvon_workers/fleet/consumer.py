"""A Celery consumer that logs, records and drops what it cannot handle.

The stock consumer can exit on a malformed message (an unknown task without an ``id``
header, a body that is not a mapping). Here every such message is logged, recorded as a
dead letter (``ruvon-workers dead-letters`` lists them) and rejected, and the worker
keeps serving.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from celery.worker.consumer import Consumer

from ..persistence.base import DeadLetterStore
from ..settings import database_url
from .factory import BackgroundStore
from .runtime import process_runtimes

log = logging.getLogger("ruvon.consumer")
_lock = threading.Lock()
_MAX_BODY = 2000


def _body_excerpt(message: Any) -> str:
    body = getattr(message, "body", b"")
    if isinstance(body, bytes | bytearray | memoryview):
        body = bytes(body).decode("utf-8", "replace")
    return str(body)[:_MAX_BODY]


def record_dead_letter(task: str | None, workflow_id: str | None, reason: str,
                       payload: Any) -> None:
    """Record a refused message through a store's ``record_dead_letter`` (which cleans
    NUL characters and cuts the reason); never raises, and does nothing without a
    ``DATABASE_URL``.

    A pool process uses its worker runtime's store (it has one by the time it refuses a
    message); elsewhere (the worker's main process: its consumer and transport) a small
    store of the process's own does it, built on first use.
    """
    if not database_url(required=False):
        return
    try:
        store, run = _dead_letter_store()
        run(store.record_dead_letter(task, workflow_id, reason, payload))
    except Exception as exc:
        log.warning("could not record dead letter (%s): %s", reason, exc)


Runner = Callable[[Coroutine[Any, Any, None]], None]


def _dead_letter_store() -> tuple[DeadLetterStore, Runner]:
    for runtime in process_runtimes():
        if runtime.can_run_here():
            return runtime.persistence, runtime.run
    own = _OwnStore.for_this_process()
    return own.persistence, own.run


class _OwnStore:
    """The process's own background store (``fleet.factory.BackgroundStore``), made on
    first use, and again in a forked child."""

    _current: BackgroundStore | None = None

    @classmethod
    def for_this_process(cls) -> BackgroundStore:
        own = cls._current
        if own is None or own.pid != os.getpid():  # none yet, or the parent's (a fork)
            with _lock:
                own = cls._current
                if own is None or own.pid != os.getpid():
                    own = cls._current = BackgroundStore("ruvon-dead-letters")
                    atexit.register(own.close)
        return own


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
