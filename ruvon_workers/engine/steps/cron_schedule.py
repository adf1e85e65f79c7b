"""CRON_SCHEDULE: register a schedule and move on; the fleet's scheduler fires it.

The caller stores ``Transition.schedule`` (by name, so a re-run stores the same one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ...definitions.models import StepDefinition
from .base import Problem, StepKind
from .fire_and_forget import rendered_data

if TYPE_CHECKING:
    from ..runner import StepRunner
    from ..transition import Transition


class CronScheduleStep(StepKind):
    """The cron expression is ``schedule`` (Ruvon's key) or ``cron_expression``."""

    required_fields = ("target_workflow_type",)

    def problems(self, step: StepDefinition) -> Iterable[Problem]:
        from ...scheduling import cron_problem

        field = "schedule" if step.schedule else "cron_expression"
        if not step.cron_expression:
            yield "schedule", "a CRON_SCHEDULE step needs 'schedule' (or 'cron_expression')"
        elif step.schedule and step.schedule != step.cron_expression:
            yield "schedule", (f"two cron expressions ('schedule: {step.schedule}', "
                               f"'cron_expression: {step.cron_expression}'): give one")
        elif problem := cron_problem(step.cron_expression):
            yield field, problem

    async def run(self, runner: StepRunner, state: BaseModel, validated: BaseModel | None,
                  started: float) -> Transition:
        from ...scheduling import next_tick

        step = runner.step
        next_run = next_tick(step.cron_expression or "", dt.datetime.now(dt.UTC))
        schedule: dict[str, Any] = {
            "name": step.schedule_name or f"{runner.record.workflow_type}.{step.name}",
            "workflow_type": step.target_workflow_type,
            "cron_expression": step.cron_expression,
            "initial_data": rendered_data(runner),
            "next_run_at": next_run,
            "created_by": runner.record.id,
        }
        # Ruvon's answer from next_step; the state is not changed.
        result = {"message": f"Workflow {step.target_workflow_type} scheduled as "
                             f"{schedule['name']}",
                  "schedule_name": schedule["name"]}
        transition = runner.complete(runner.record.state, result, started)
        transition.schedule = schedule
        transition.add_detail(schedule=schedule["name"], next_run_at=next_run.isoformat())
        return transition
