"""Directives: exceptions a step function raises to steer its workflow."""

from __future__ import annotations

from typing import Any


class Directive(Exception):
    """Base of the control-flow signals a step may raise."""


class WorkflowJumpDirective(Directive):
    """Continue at ``target_step_name`` instead of the next step in order."""

    def __init__(self, target_step_name: str, result: dict[str, Any] | None = None):
        self.target_step_name = target_step_name
        #: Merged into the state before the jump, like a step's returned dict.
        self.result = result
        super().__init__(f"jump to '{target_step_name}'")


class WorkflowPauseDirective(Directive):
    """Pause the workflow (WAITING_HUMAN) until it is resumed with input."""

    def __init__(self, result: dict[str, Any] | None = None, waiting_for: str | None = None):
        self.result = result or {}
        self.waiting_for = waiting_for
        super().__init__(f"pause, waiting for {waiting_for or 'input'}")


class StartSubWorkflowDirective(Directive):
    """Start a child workflow; the parent waits (PENDING_SUB_WORKFLOW) for its result."""

    def __init__(self, workflow_type: str, initial_data: dict[str, Any] | None = None,
                 data_region: str | None = None, owner_id: str | None = None):
        self.workflow_type = workflow_type
        self.initial_data = initial_data or {}
        self.data_region = data_region
        self.owner_id = owner_id
        super().__init__(f"start sub-workflow '{workflow_type}'")
