"""Ruvon's provider base classes, for programs that write their own providers."""

from __future__ import annotations

from ruvon_workers.errors import RuvonError, WorkflowNotFound
from ruvon_workers.observers import WorkflowObserver


class PersistenceError(RuvonError):
    """A store could not read or write."""


class WorkflowNotFoundError(PersistenceError, WorkflowNotFound):
    """No workflow with that id."""

    def __init__(self, workflow_id: str):
        WorkflowNotFound.__init__(self, workflow_id)


class DuplicateIdempotencyKeyError(PersistenceError):
    """The idempotency key is taken by another workflow."""


__all__ = ["DuplicateIdempotencyKeyError", "PersistenceError", "WorkflowNotFoundError",
           "WorkflowObserver"]
