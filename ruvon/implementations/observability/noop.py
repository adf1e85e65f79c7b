"""``NoopWorkflowObserver``: observes nothing."""

from __future__ import annotations

from ruvon_workers.observers import NoopWorkflowObserver

#: The names Ruvon's docs use.
NoopObserver = NoOpObserver = NoopWorkflowObserver

__all__ = ["NoOpObserver", "NoopObserver", "NoopWorkflowObserver"]
