"""STANDARD, ASYNC, DECISION and HUMAN_IN_LOOP: a call of the step's function.

On the fleet every step is a task, so ASYNC runs like STANDARD. A DECISION's routes are
applied by :func:`~ruvon_workers.engine.routing.next_after` after its function (if any).
A HUMAN_IN_LOOP step is arrived at waiting for input (see ``routing.arrive``) and runs
once resumed with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...definitions.models import StepDefinition
from .base import Problem, StepKind


class FunctionStep(StepKind):
    """STANDARD and ASYNC. One with ``routes`` and no ``function`` only routes, like a
    DECISION step (Ruvon has no DECISION type: its files route from STANDARD steps)."""

    required_fields = ()

    def problems(self, step: StepDefinition) -> Iterable[Problem]:
        if not (step.function or step.routes):
            yield "function", f"a {step.type.value} step needs 'function' (or 'routes')"


class DecisionStep(StepKind):
    required_fields = ()

    def problems(self, step: StepDefinition) -> Iterable[Problem]:
        if not (step.function or step.routes):
            yield "function", "a DECISION step needs 'function' or 'routes'"


class HumanStep(StepKind):
    required_fields = ()
    pauses_in_place = True
