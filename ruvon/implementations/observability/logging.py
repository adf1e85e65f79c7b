"""``LoggingObserver``: every workflow event on the ``ruvon.observer`` logger."""

from __future__ import annotations

from ruvon_workers.observers import LoggingObserver

__all__ = ["LoggingObserver"]
