"""HTTP: send the configured request; the response lands under ``output_key``.

The request itself (templates, secrets, redirects, limits) is :mod:`..http`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel

from ...definitions.models import RetryPolicy, StepDefinition
from ..values import merge_result
from .base import Problem, StepKind

if TYPE_CHECKING:
    from ..runner import StepRunner
    from ..transition import Transition


class HttpStep(StepKind):
    required_fields = ("http_config",)

    def problems(self, step: StepDefinition) -> Iterable[Problem]:
        if step.http_config:
            from ..http import check_http_config

            yield from check_http_config(step)

    def retry_policy(self, step: StepDefinition) -> RetryPolicy | None:
        from ..http import effective_retry_policy

        return effective_retry_policy(step)

    async def run(self, runner: StepRunner, state: BaseModel, validated: BaseModel | None,
                  started: float) -> Transition:
        from ..http import run_http_step

        result = await run_http_step(runner.step, runner.record.state,
                                     workflow_id=runner.record.id,
                                     idempotency_key=runner.idempotency_key)
        new_state = merge_result(runner.defn, state, result, runner.step.name)
        return runner.complete(new_state, result, started)
