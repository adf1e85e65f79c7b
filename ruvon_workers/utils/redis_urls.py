"""Broker URLs as redis-py understands them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import redis


def redis_py_url(url: str) -> str:
    """kombu's ``redis+socket:///path?virtual_host=N`` as redis-py's
    ``unix:///path?db=N``; other URLs unchanged."""
    if not url.startswith("redis+socket://"):
        return url
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    db = (query.pop("virtual_host", None) or ["0"])[0]
    rest = {k: v[0] for k, v in query.items()}
    return f"unix://{parts.path}?{urlencode({'db': db, **rest})}"


def redis_client(url: str, **kwargs: object) -> redis.Redis:
    return redis.Redis.from_url(redis_py_url(url), **kwargs)
