"""One module per step type, registered in :data:`KINDS`.

A step type is a :class:`~.base.StepKind`: it validates its fields when the definition
is loaded, and runs the step (and, for PARALLEL, plans the fan-out and joins it) through
the public methods of :class:`~ruvon_workers.engine.runner.StepRunner`. Adding a type is
one module here and one row below.
"""

from __future__ import annotations

from ...definitions.models import StepType
from .base import StepKind
from .compensatable import CompensatableStep
from .cron_schedule import CronScheduleStep
from .fire_and_forget import FireAndForgetStep
from .function import AsyncStep, DecisionStep, FunctionStep, HumanStep
from .http import HttpStep
from .loop import LoopStep
from .parallel import ParallelStep

KINDS: dict[StepType, StepKind] = {
    StepType.STANDARD: FunctionStep(),
    StepType.COMPENSATABLE: CompensatableStep(),
    StepType.ASYNC: AsyncStep(),
    StepType.DECISION: DecisionStep(),
    StepType.HUMAN_IN_LOOP: HumanStep(),
    StepType.HTTP: HttpStep(),
    StepType.PARALLEL: ParallelStep(),
    StepType.LOOP: LoopStep(),
    StepType.FIRE_AND_FORGET: FireAndForgetStep(),
    StepType.CRON_SCHEDULE: CronScheduleStep(),
}


def kind_of(step_type: StepType) -> StepKind:
    return KINDS[step_type]


__all__ = ["KINDS", "StepKind", "kind_of"]
