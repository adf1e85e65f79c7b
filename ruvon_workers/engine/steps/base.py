"""What every step type module provides, and the plain kind: call the step's function."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel

from ...definitions.models import RetryPolicy, StepDefinition
from ..values import merge_result

if TYPE_CHECKING:
    from ..runner import StepRunner
    from ..transition import Transition

#: ``(field, message)``: a problem in a step's definition.
Problem = tuple[str, str]


class StepKind:
    """One step type. A subclass overrides what its type does differently; this base
    calls the step's ``function`` and merges what it returns (STANDARD, ASYNC)."""

    #: Fields the definition must set.
    required_fields: tuple[str, ...] = ("function",)
    #: A ``WorkflowPauseDirective`` raised by the step waits at the step itself (and runs
    #: it again on resume) rather than at the next one.
    pauses_in_place = False
    #: The function gets the input it is resumed with as keywords (Ruvon: HUMAN_IN_LOOP
    #: and ASYNC). Every other function finds it on ``context.user_input`` (and
    #: ``context.validated_input``).
    takes_input = False

    def problems(self, step: StepDefinition) -> Iterable[Problem]:
        """What is wrong with ``step``'s type-specific fields (loading refuses it)."""
        return ()

    def function_paths(self, step: StepDefinition) -> Iterable[tuple[str, str]]:
        """``(field, dotted path)`` of callables beyond the common fields, to import when
        the definition is loaded."""
        return ()

    def retry_policy(self, step: StepDefinition) -> RetryPolicy | None:
        return step.retry_policy

    async def run(self, runner: StepRunner, state: BaseModel, validated: BaseModel | None,
                  started: float) -> Transition:
        """Run the step; raise a directive or an error to steer or fail it."""
        fn = runner.defn.function(runner.step.function)
        if fn is None:
            # HUMAN_IN_LOOP without a function (and a routes-only DECISION): the input,
            # if any, is the step's result.
            result: object = validated.model_dump() if validated else (runner.user_input or None)
        else:
            result = await runner.call(state, validated)
        new_state = merge_result(runner.defn, state, result, runner.step.name)
        return runner.complete(new_state, result, started)
