from __future__ import annotations

import pytest

from ruvon_workers import WorkflowBuilder

from ..helpers import FLEET_REGISTRY


@pytest.fixture
def types_builder() -> WorkflowBuilder:
    """The step-type fixtures' registry."""
    return WorkflowBuilder.from_registry(FLEET_REGISTRY)
