"""Ruvon's import paths, served by Ruvon Workers.

A program written against the Ruvon SDK imports ``ruvon``; this package is a thin front
door over :mod:`ruvon_workers` (one engine, two sets of names). See
docs/ruvon-compat.md for what is covered.
"""

from __future__ import annotations

from ruvon_workers.engine.context import StepContext

from .builder import WorkflowBuilder
from .workflow import Workflow

#: The Ruvon SDK release whose public API this package follows.
__version__ = "0.1.3"

__all__ = ["StepContext", "Workflow", "WorkflowBuilder", "__version__"]
