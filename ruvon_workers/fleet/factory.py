"""Stores and coordinators for every kind of process, built in one place.

Which PostgreSQL driver a store uses and how large its pool is follow from the kind of
process (its *role*) and nothing else:

============  ========  ===  ===  ==========================================================
role          driver    min  max  why
============  ========  ===  ===  ==========================================================
step          blocking    1    4  a prefork or solo pool process runs one step at a time,
                                  its queries pinned to one connection; nothing else shares
                                  its loop, so queries need not yield
threads       async       1   50  a worker process running steps on threads: they all share
                                  one loop and one pool, which grows with the steps in flight
client        async       1   50  ``Client`` / ``AsyncClient``: a producer's concurrent calls
                                  share one pool
background    async       1    2  a worker's recovery sweep, CRON scheduler, status counter
                                  and dead-letter writer: each runs one query at a time
============  ========  ===  ===  ==========================================================

Every pool opens one connection and grows on demand up to its maximum.
``POSTGRES_POOL_MIN_SIZE`` and ``POSTGRES_POOL_MAX_SIZE``, when set, win over the table for
every role.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..persistence.postgres import (
    BlockingPostgresPersistenceProvider,
    PostgresPersistenceProvider,
)
from ..settings import database_url, float_env
from ..utils.loop import LoopThread
from .coordinator import Coordinator
from .dispatch import Dispatcher
from .settings import FleetSettings

if TYPE_CHECKING:
    from celery import Celery

    from ..definitions import Registry
    from ..persistence.base import PersistenceProvider

T = TypeVar("T")
Role = Literal["step", "threads", "client", "background"]
Driver = Literal["blocking", "async"]

MIN_SIZE_ENV = "POSTGRES_POOL_MIN_SIZE"
MAX_SIZE_ENV = "POSTGRES_POOL_MAX_SIZE"


@dataclass(frozen=True)
class PoolRule:
    driver: Driver
    min_size: int
    max_size: int


#: The table above.
POOL_RULES: dict[Role, PoolRule] = {
    "step": PoolRule("blocking", 1, 4),
    "threads": PoolRule("async", 1, 50),
    "client": PoolRule("async", 1, 50),
    "background": PoolRule("async", 1, 2),
}


#: Long-lived processes that may sit idle across a PostgreSQL restart check a connection
#: before using it; a step task retries a dead one instead (no round trip per step).
CHECKED_ROLES = frozenset({"client", "background"})


def pool_sizes(role: Role) -> tuple[int, int]:
    """``(min, max)`` connections for a store of ``role``: the environment's, else the
    role's."""
    rule = POOL_RULES[role]
    return (int(float_env(MIN_SIZE_ENV, rule.min_size)),
            int(float_env(MAX_SIZE_ENV, rule.max_size)))


def store_role(*, inline: bool) -> Role:
    """The role of a worker process's own store: ``step`` where steps run one at a time
    on the thread that drives the loop (prefork, solo), ``threads`` otherwise."""
    return "step" if inline else "threads"


def build_store(role: Role, url: str | None = None) -> PostgresPersistenceProvider:
    """A PostgreSQL store for a process of ``role`` (not yet initialized) on ``url``, or on
    ``DATABASE_URL`` when ``url`` is not given."""
    rule = POOL_RULES[role]
    store = (BlockingPostgresPersistenceProvider if rule.driver == "blocking"
             else PostgresPersistenceProvider)
    min_size, max_size = pool_sizes(role)
    return store(database_url(url) or "", pool_min_size=min_size, pool_max_size=max_size,
                 check_connections=role in CHECKED_ROLES)


def build_coordinator(persistence: PersistenceProvider, *, app: Celery | None = None,
                      registry: Registry | None = None,
                      dispatcher: Dispatcher | None = None,
                      settings: FleetSettings | None = None) -> Coordinator:
    """A coordinator on ``persistence``. The registry, settings and dispatcher default to
    ``app``'s (``create_app``); without an app, pass the registry and a dispatcher."""
    if registry is None:
        if app is None:
            raise TypeError("build_coordinator needs an app or a registry")
        registry = app.ruvon_registry
    if settings is None:
        settings = app.ruvon_settings if app is not None else FleetSettings.from_env()
    if dispatcher is None:
        if app is None:
            raise TypeError("build_coordinator needs an app or a dispatcher")
        dispatcher = Dispatcher(app, registry, settings)
    return Coordinator(registry, persistence, dispatcher, settings)


__all__ = ["POOL_RULES", "PoolRule", "Role", "build_coordinator", "build_store",
           "pool_sizes", "store_role"]


class BackgroundStore:
    """A "background" store on an event loop thread of its own, for synchronous code in a
    process without a worker runtime (the worker's main process: its consumer, transport
    and metrics). ``run`` opens the pool first (again after a failure), so a database
    that was down when the process started is used once it is back."""

    def __init__(self, name: str):
        self.pid = os.getpid()
        self.loop = LoopThread(name=name)
        self.persistence: PostgresPersistenceProvider = build_store("background")
        self.closed = False

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.loop.run(self._initialized(coro), timeout)

    async def _initialized(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            await self.persistence.initialize()  # a no-op once open
        except BaseException:
            coro.close()
            raise
        return await coro

    def close(self) -> None:
        """Close the pool and stop the loop (only in the process that made them)."""
        if self.pid != os.getpid() or self.closed:
            return
        self.closed = True
        try:
            self.loop.run(self.persistence.close(), timeout=5)
        except Exception:
            pass
        finally:
            self.loop.stop()
