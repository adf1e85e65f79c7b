"""Ruvon's ``ruvon.models``: the step context, directives, merge settings."""

from __future__ import annotations

import enum

from ruvon_workers.directives import (
    StartSubWorkflowDirective,
    WorkflowJumpDirective,
    WorkflowPauseDirective,
)
from ruvon_workers.engine.context import StepContext
from ruvon_workers.errors import SagaWorkflowException, WorkflowFailedException


class MergeStrategy(enum.StrEnum):
    SHALLOW = "shallow"
    DEEP = "deep"


class MergeConflictBehavior(enum.StrEnum):
    PREFER_NEW = "prefer_new"
    PREFER_EXISTING = "prefer_existing"
    RAISE_ERROR = "raise_error"


__all__ = [
    "MergeConflictBehavior",
    "MergeStrategy",
    "SagaWorkflowException",
    "StartSubWorkflowDirective",
    "StepContext",
    "WorkflowFailedException",
    "WorkflowJumpDirective",
    "WorkflowPauseDirective",
]
