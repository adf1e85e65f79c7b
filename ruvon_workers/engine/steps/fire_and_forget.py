"""FIRE_AND_FORGET: start an independent workflow and move on at once.

The caller starts it (``Transition.spawn``) before committing; its idempotency key is
fixed by the step execution, so a re-run starts no second one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ...errors import ConditionError, StepFailed
from ..templates import render_data
from .base import StepKind

if TYPE_CHECKING:
    from ..runner import StepRunner
    from ..transition import Spawn, Transition


def rendered_data(runner: StepRunner) -> dict[str, Any]:
    """The step's ``initial_data_template`` rendered from the state."""
    try:
        data = render_data(runner.step.initial_data_template or {}, runner.record.state)
    except ConditionError as exc:
        raise StepFailed(runner.step.name, f"initial_data_template: {exc}") from None
    return dict(data) if isinstance(data, dict) else {}


class FireAndForgetStep(StepKind):
    required_fields = ("target_workflow_type",)

    async def run(self, runner: StepRunner, state: BaseModel, validated: BaseModel | None,
                  started: float) -> Transition:
        spawn: Spawn = {"workflow_type": runner.step.target_workflow_type,
                        "initial_data": rendered_data(runner)}
        transition = runner.complete(runner.record.state, None, started)
        transition.spawn = spawn
        return transition
