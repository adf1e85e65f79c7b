"""The broker's epoch marker: how the fleet notices, in seconds, that its broker lost
every message (a Redis restarted without persistence, a ``FLUSHALL``, a failover to an
empty replica).

The first worker to find no marker in the broker writes one (a random token, ``SET NX``).
Every worker reads it on each beat and records it in PostgreSQL
(``WorkerStore.note_broker_epoch``): a token other than the one recorded means the
broker lost what it held, and every step that may have been queued there is made due, so
the sweeps send it again at once (a duplicate of a message that did survive is a no-op).
Only Redis brokers carry a marker; on other brokers the fleet relies on leases.

``queued_steps`` reads the step messages waiting in Redis: when a worker dies, what it
took in its last moments (after its last beat) is neither in its record nor in the
broker, and the reap sends again every step that is in neither place.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

from kombu.utils.url import maybe_sanitize_url

from ..utils.redis_urls import redis_client

log = logging.getLogger("ruvon.epoch")

KEY = "ruvon:broker-epoch"
_REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://")


class BrokerEpoch:
    """Reads (and, when it is missing, writes) the marker of one broker."""

    def __init__(self, url: str):
        self.url = url
        #: How the broker is named in PostgreSQL: its URL without the password.
        self.name = str(maybe_sanitize_url(url))
        self._client: Any = None

    @classmethod
    def for_url(cls, url: str | None) -> BrokerEpoch | None:
        """The marker of a Redis broker; ``None`` for any other broker."""
        if not url or not url.startswith(_REDIS_SCHEMES):
            return None
        return cls(url)

    def current(self) -> str:
        """The broker's marker, written first if it has none. Raises the client's error
        when the broker cannot be reached (the caller tries again at its next beat)."""
        try:
            client = self._connect()
            value = client.get(KEY)
            if value is None:
                client.set(KEY, uuid.uuid4().hex, nx=True)
                value = client.get(KEY)
        except Exception:
            self.close()
            raise
        return value.decode() if isinstance(value, bytes) else str(value)

    def _connect(self) -> Any:
        if self._client is None:
            self._client = redis_client(self.url, socket_timeout=5,
                                        socket_connect_timeout=5)
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # pragma: no cover - closing a broken client
                pass


#: kombu's Redis transport keeps a queue's messages of priority n (3, 6, 9) in a list
#: named ``<queue>`` + this separator + n; priority 0 in the list named ``<queue>``.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)


def queued_steps(url: str | None, queues: list[str]) -> list[tuple[str, int, int | None]] | None:
    """The step messages waiting in a Redis broker's ``queues``, as ``(workflow id,
    version, branch)``; ``None`` for a broker whose queues cannot be read here."""
    if not url or not url.startswith(_REDIS_SCHEMES):
        return None
    client = redis_client(url, socket_timeout=10, socket_connect_timeout=5)
    found: dict[tuple[str, int, int | None], None] = {}
    try:
        for queue in queues:
            for priority in _PRIORITY_STEPS:
                name = queue if not priority else f"{queue}{_PRIORITY_SEPARATOR}{priority}"
                for entry in client.lrange(name, 0, -1):
                    step = _step_of(entry)
                    if step is not None:
                        found[step] = None
    finally:
        client.close()
    return list(found)


def _step_of(entry: bytes | str) -> tuple[str, int, int | None] | None:
    """``(workflow id, version, branch)`` of a queued step message, or ``None``."""
    try:
        message = json.loads(entry)
        if not str(message["headers"]["task"]).startswith("ruvon.step"):
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _, kwargs, _ = json.loads(body)
        branch = kwargs.get("branch")
        return (str(kwargs["workflow_id"]), int(kwargs["version"]),
                None if branch is None else int(branch))
    except (ValueError, KeyError, TypeError):
        return None
