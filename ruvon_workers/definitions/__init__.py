"""Workflow definitions: the registry and workflow YAML, loaded into typed models."""

from __future__ import annotations

from .loader import Registry, load_registry, load_registry_mapping, load_workflow_file
from .models import RetryPolicy, Route, StepDefinition, StepType, WorkflowDefinition

__all__ = [
    "Registry",
    "RetryPolicy",
    "Route",
    "StepDefinition",
    "StepType",
    "WorkflowDefinition",
    "load_registry",
    "load_registry_mapping",
    "load_workflow_file",
]
