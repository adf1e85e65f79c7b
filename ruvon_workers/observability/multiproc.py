"""prometheus-client's multiprocess mode for the prefork pool.

Every process (the worker's main process and each pool process) writes its samples to
memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``; the main process serves the sum.
Counters and histograms of a pool process that exited stay in the sum (nothing is lost);
its "live" gauges are dropped when it exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("ruvon.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess() -> Path:
    """Point prometheus-client at a metrics directory before the pool forks.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, that directory is used and the samples an earlier
    run left in it are removed (give each worker its own directory). Otherwise a fresh
    temporary directory is created, and removed when this process exits.
    """
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="ruvon-metrics-"))
        os.environ[ENV] = str(path)
        atexit.register(_remove, path, os.getpid())
    values: Any = sys.modules.get("prometheus_client.values")
    if values is not None:
        # Imported before the directory was set: metrics created from now on use it.
        values.ValueClass = values.get_value_class()
    return path


def _remove(path: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def mark_process_dead(pid: int) -> None:
    """Drop the live gauges of a process that is exiting."""
    from prometheus_client import multiprocess

    if os.environ.get(ENV):
        multiprocess.mark_process_dead(pid)


def serve(port: int, address: str) -> bool:
    """Serve every process's metrics on ``http://address:port/metrics``; ``False`` (and a
    warning) when the port cannot be bound."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        log.warning("cannot serve metrics on %s:%d (%s); the worker runs on without "
                    "/metrics. Set RUVON_METRICS_PORT to a free port (0 turns metrics off).",
                    address, port, exc.strerror or exc)
        return False
    log.info("metrics on http://%s:%d/metrics", address, port)
    return True
