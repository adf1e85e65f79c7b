"""STANDARD, ASYNC, DECISION and HUMAN_IN_LOOP: a call of the step's function.

On the fleet every step is a task, so ASYNC runs as one too; its function gets the state
as a dict, and what it returns is merged by the step's ``merge_strategy`` (Ruvon's ASYNC).
A DECISION's routes are applied by :func:`~ruvon_workers.engine.routing.next_after`
after its function (if any).
A HUMAN_IN_LOOP step is arrived at waiting for input (see ``routing.arrive``) and runs
once resumed with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel

from ...definitions.models import StepDefinition
from ...errors import StepFailed
from ..values import call_step_function, check_storable, state_dict, validated_state
from .base import Problem, StepKind
from .parallel import kept, merge_branches, strategy_problems

if TYPE_CHECKING:
    from ..runner import StepRunner
    from ..transition import Transition


class FunctionStep(StepKind):
    """STANDARD and ASYNC. One with ``routes`` and no ``function`` only routes, like a
    DECISION step (Ruvon has no DECISION type: its files route from STANDARD steps)."""

    required_fields = ()

    def problems(self, step: StepDefinition) -> Iterable[Problem]:
        if not (step.function or step.routes):
            yield "function", f"a {step.type.value} step needs 'function' (or 'routes')"


class AsyncStep(FunctionStep):
    """ASYNC: ``fn(state_dict, context, **user_input)``, its context named after the
    function (as on Ruvon); the returned dict is merged by ``merge_strategy``."""

    takes_input = True

    def problems(self, step: StepDefinition) -> Iterable[Problem]:
        if not step.function:
            yield "function", "an ASYNC step needs 'function'"
        yield from strategy_problems(step)

    async def run(self, runner: StepRunner, state: BaseModel, validated: BaseModel | None,
                  started: float) -> Transition:
        step = runner.step
        fn = runner.defn.function(step.function)
        context = runner.context(validated)
        context.step_name = getattr(fn, "__name__", step.name)
        result = await call_step_function(fn, state_dict(runner.record.state), context,
                                          runner.user_input)
        if hasattr(result, "model_dump"):
            result = result.model_dump(mode="json")
        if result is not None and not isinstance(result, dict):
            raise StepFailed(step.name, f"returned {type(result).__name__}; a step returns "
                                        "a dict of state fields to merge, or None")
        state_now = runner.record.state
        if result:
            check_storable(result, step.name, "result field")
        merged = merge_branches(runner.defn, step, state_now,
                                [(step.name, kept(step, state_now, result or {}))])
        return runner.complete(validated_state(runner.defn, merged, step.name), result,
                               started)


class DecisionStep(StepKind):
    required_fields = ()

    def problems(self, step: StepDefinition) -> Iterable[Problem]:
        if not (step.function or step.routes):
            yield "function", "a DECISION step needs 'function' or 'routes'"


class HumanStep(StepKind):
    required_fields = ()
    pauses_in_place = True
    takes_input = True
