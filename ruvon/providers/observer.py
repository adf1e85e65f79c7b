"""``WorkflowObserver``: subclass it and override the events you want."""

from __future__ import annotations

from ruvon_workers.observers import NoopWorkflowObserver, WorkflowObserver

NoopObserver = NoopWorkflowObserver

__all__ = ["NoopObserver", "WorkflowObserver"]
