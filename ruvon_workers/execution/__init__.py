"""How steps run: in the caller's process, or on the Celery fleet."""

from __future__ import annotations

from .base import ExecutionProvider
from .sync import SyncExecutionProvider

__all__ = ["CeleryExecutionProvider", "ExecutionProvider", "SyncExecutionProvider"]


def __getattr__(name: str) -> object:
    # Importing Celery is deferred so in-process use does not pay for it.
    if name == "CeleryExecutionProvider":
        from .celery import CeleryExecutionProvider

        return CeleryExecutionProvider
    raise AttributeError(name)
