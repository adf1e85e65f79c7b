"""Where a run goes after a step: routes, the next step in order, injected steps."""

from __future__ import annotations

from typing import Any

from ..definitions.models import StepDefinition, StepType, WorkflowDefinition
from .records import Status
from .runtime import Runtime


def next_after(defn: WorkflowDefinition, step: StepDefinition, state: dict[str, Any],
               runtime: Runtime | None = None) -> tuple[str | None, bool]:
    """The step that follows ``step`` and whether a route chose it (a jump).

    With ``runtime``, ``dynamic_injection`` applies: steps a rule inserted after the
    current one run first (kept in ``runtime.inserted``, which this updates), then the
    run goes on where it would have gone.
    """
    target, routed = route(defn, step, state)
    if runtime is None:
        return target, routed
    inserted = runtime.inserted
    queue = list(inserted["steps"]) if inserted else []
    then = inserted["then"] if inserted else target
    if queue and queue[0] == step.name:  # an inserted step finished
        queue.pop(0)
        target, routed = then, False
    # Each matching rule inserts its steps right after the current one, as on Ruvon: the
    # steps of a later rule come before those of an earlier one.
    new = [name for rule in reversed(defn.injection_rules.get(step.name, ()))
           if rule.matches(state) for name in rule.steps_to_insert]
    if new and not queue:
        then = target
    queue = new + queue
    if queue:
        # Inserted steps are part of the run's path, not a jump: automate_next chains
        # into them (Ruvon).
        runtime.inserted = {"steps": queue, "then": then}
        return queue[0], False
    runtime.inserted = None
    return target, routed


def route(defn: WorkflowDefinition, step: StepDefinition,
          state: dict[str, Any]) -> tuple[str | None, bool]:
    """The first route whose condition holds, else the next step in order."""
    for condition, target in defn.routes.get(step.name, ()):
        if condition is None or condition.evaluate(state):
            return target, True
    return defn.step_after(step.name), False


def arrive(defn: WorkflowDefinition, next_step: str | None) -> tuple[str, str | None]:
    """Status on arriving at ``next_step``: HUMAN_IN_LOOP steps wait for input."""
    if next_step is None:
        return Status.COMPLETED, None
    if defn.step(next_step).type is StepType.HUMAN_IN_LOOP:
        return Status.WAITING_HUMAN, next_step
    return Status.ACTIVE, next_step
