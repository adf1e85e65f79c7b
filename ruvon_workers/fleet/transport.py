"""A Redis transport whose consumer survives a list entry that is not a kombu envelope,
and whose publishes reuse one Redis client.

kombu's Redis channel decodes each popped entry with ``loads`` inside the worker's event
loop; an entry that is not JSON (anyone can ``LPUSH`` onto the queue) raises there and
the stock worker exits with "Unrecoverable error". This channel logs and records such an
entry and goes on. The worker registers it for ``redis://``, ``rediss://`` and
``redis+socket://`` URLs in its own process (producers are unaffected).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

log = logging.getLogger("ruvon.transport")


class Channel(kombu_redis.Channel):
    _publish_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        # kombu builds a new redis.Redis for every publish, and redis-py's constructor
        # fills a table of ~170 response callbacks each time (~0.3 ms). One client per
        # channel, on the channel's own connection pool, does the same work.
        if client is None:
            if self._publish_client is None:
                self._publish_client = self._create_client()
            client = self._publish_client
        yield client

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            if isinstance(exc, self.connection_errors):  # pragma: no cover - defensive
                raise
            from .consumer import record_dead_letter

            reason = f"dropped a queue entry that is not a Celery message: {exc}"
            log.error(reason)
            record_dead_letter(None, None, reason, None)
            raise Empty() from None


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
