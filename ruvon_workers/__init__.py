"""Ruvon Workers: Ruvon-compatible workflows on a Celery fleet, state in PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .builder import WorkflowBuilder
from .directives import (
    StartSubWorkflowDirective,
    WorkflowJumpDirective,
    WorkflowPauseDirective,
)
from .engine.context import StepContext
from .engine.records import Status
from .errors import (
    DefinitionError,
    InputTooLarge,
    InvalidStateError,
    RuvonError,
    SagaWorkflowException,
    StaleStateError,
    WorkflowFailedException,
    WorkflowNotFound,
)
from .workflow import Workflow

if TYPE_CHECKING:  # loaded lazily by __getattr__ below; imported here for type checkers
    from .client import AsyncClient, Client

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "DefinitionError",
    "InputTooLarge",
    "InvalidStateError",
    "RuvonError",
    "SagaWorkflowException",
    "StaleStateError",
    "StartSubWorkflowDirective",
    "Status",
    "StepContext",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowFailedException",
    "WorkflowJumpDirective",
    "WorkflowNotFound",
    "WorkflowPauseDirective",
    "__version__",
]


def __getattr__(name: str) -> object:
    # The producer clients import Celery; load them only when asked for.
    if name in {"Client", "AsyncClient"}:
        from . import client

        return getattr(client, name)
    raise AttributeError(name)
