"""Prometheus metrics of the worker fleet.

``ruvon-workers worker`` calls :func:`prepare_multiprocess` before anything imports
``prometheus_client`` (so the prefork pool's processes share one metrics directory), then
:func:`install` to hook the metrics into Celery, the coordinator and the store, and to
serve them on ``RUVON_METRICS_PORT`` (default 9808; ``0`` turns them off).

Nothing here imports ``prometheus_client`` at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .multiproc import prepare_multiprocess

if TYPE_CHECKING:
    from celery import Celery

DEFAULT_METRICS_PORT = 9808

__all__ = ["DEFAULT_METRICS_PORT", "install", "prepare_multiprocess"]


def install(app: Celery, port: int, address: str = "0.0.0.0") -> None:
    """Record the fleet's metrics in this worker and serve them on ``address:port``."""
    from .hooks import install as _install

    _install(app, port, address)
