"""LOOP: run the body once per item (ITERATE) or while a condition holds (WHILE).

One iteration per transition, so each is committed, and a crash resumes at the iteration
it interrupted; the last one moves on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ...definitions.conditions import compile_expression
from ...definitions.models import StepDefinition
from ...directives import StartSubWorkflowDirective, WorkflowJumpDirective, WorkflowPauseDirective
from ...errors import StepFailed
from ...settings import max_loop_iterations
from ..records import HistoryEntry, RecordUpdate, Status, StepOutcome
from ..transition import Transition, elapsed_ms
from ..values import call_step_function, merge_result
from .base import Problem, StepKind
from .parallel import items_of

if TYPE_CHECKING:
    from ..runner import StepRunner


def _is_while(step: StepDefinition) -> bool:
    return (step.mode or "").upper() == "WHILE" or (not step.mode and bool(step.while_condition))


def _limit(step: StepDefinition) -> int | None:
    """The step's ``max_iterations``; a WHILE loop without one stops after
    ``RUVON_MAX_LOOP_ITERATIONS`` rounds (default 1000, Ruvon's), an ITERATE loop without
    one takes every item."""
    if step.max_iterations is not None:
        return step.max_iterations
    return max_loop_iterations() if _is_while(step) else None


class LoopStep(StepKind):
    required_fields = ()

    def problems(self, step: StepDefinition) -> Iterable[Problem]:
        mode = (step.mode or ("WHILE" if step.while_condition else "ITERATE")).upper()
        if mode not in ("ITERATE", "WHILE"):
            yield "mode", f"mode '{step.mode}' is not ITERATE or WHILE"
        if mode == "ITERATE" and not step.iterate_over:
            yield "iterate_over", "an ITERATE loop needs 'iterate_over'"
        if mode == "WHILE" and not step.while_condition:
            yield "while_condition", "a WHILE loop needs 'while_condition'"
        if not (step.function or step.loop_body):
            yield "loop_body", "a LOOP step needs 'loop_body' (or 'function')"
        if step.max_iterations is not None and step.max_iterations < 1:
            yield "max_iterations", "max_iterations must be 1 or more"
        for i, entry in enumerate(step.loop_body):
            yield from _entry_problems(i, entry)

    def function_paths(self, step: StepDefinition) -> Iterable[tuple[str, str]]:
        for i, entry in enumerate(step.loop_body):
            path = entry.get("function") if isinstance(entry, dict) else None
            if path:
                yield f"loop_body[{i}].function", path

    async def run(self, runner: StepRunner, state: BaseModel, validated: BaseModel | None,
                  started: float) -> Transition:
        step = runner.step
        progress = runner.record.runtime.loop
        index = progress["index"] if progress and progress["step"] == step.name else 0
        data = runner.record.state
        item, done = _position(step, data, index)
        if done:
            return runner.complete(data, None, started)
        item_var = step.item_var_name or "item"
        for fn in runner.defn.loop_body(step):
            context = runner.context()
            context.loop_item, context.loop_index = item, index
            try:
                result = await call_step_function(fn, state, context, {item_var: item})
            except WorkflowJumpDirective as jump:
                return await runner.jump(state, jump, started)  # leaves the loop
            except (WorkflowPauseDirective, StartSubWorkflowDirective) as directive:
                raise StepFailed(step.name, f"iteration {index}: a LOOP body cannot "
                                            f"{directive}; end the loop first (make it a "
                                            "step after the LOOP step)") from None
            data = merge_result(runner.defn, state, result, step.name)
            state = runner.defn.state_model.model_validate(data)
        try:
            item, done = _position(step, data, index + 1)
        except StepFailed:
            done = False  # commit this iteration; the next transition fails the step
        if done:
            transition = runner.complete(data, None, started)
            transition.add_detail(iterations=index + 1)
            limit = _limit(step)
            if _is_while(step) and index + 1 == limit and \
                    compile_expression(step.while_condition or "false").evaluate(data):
                transition.add_detail(stopped=f"max_iterations ({limit}) "
                                              "reached with while_condition still true")
            return transition
        runtime = runner.runtime_after(completed=False)
        runtime.loop = {"step": step.name, "index": index + 1}
        return Transition(
            update=RecordUpdate(Status.ACTIVE, step.name, data, runtime),
            history=[HistoryEntry(step.name, StepOutcome.ITERATED, runner.attempt,
                                  elapsed_ms(started),
                                  detail={"iteration": index, **runner.changes(data)})],
            step=step.name,
            auto_continue=True,
        )


#: The step types a loop_body entry may have: it runs its ``function``.
_BODY_TYPES = ("STANDARD", "ASYNC", "COMPENSATABLE")


def _entry_problems(i: int, entry: dict[str, Any]) -> Iterable[Problem]:
    """A loop_body entry is a step of its own (``{name, type, function}``, as in Ruvon's
    docs) or just ``{function}``; either way the loop calls its function."""
    where = f"loop_body[{i}]"
    label = f"{where} ('{entry['name']}')" if entry.get("name") else where
    kind = str(entry.get("type") or "STANDARD").upper()
    if kind not in _BODY_TYPES:
        yield f"{where}.type", (f"{label} is a {kind} step: a LOOP body runs functions, "
                                f"so its entries are {', '.join(_BODY_TYPES)} steps (make "
                                "it a step after the LOOP)")
    elif not entry.get("function"):
        yield f"{where}.function", f"{label} needs 'function'"


def _position(step: StepDefinition, state: dict[str, Any], index: int) -> tuple[Any, bool]:
    """``(item, done)`` for iteration ``index``."""
    limit = _limit(step)
    if _is_while(step):
        if not compile_expression(step.while_condition or "false").evaluate(state):
            return None, True
        # As on Ruvon, a WHILE loop ends after max_iterations even if its condition still
        # holds (a bounded poll); the LOOP's history row says so.
        return None, limit is not None and index >= limit
    items = items_of(step, state)
    if limit is not None and len(items) > limit:
        raise StepFailed(step.name, f"iterate_over '{step.iterate_over}' has {len(items)} "
                                    f"items, more than max_iterations ({limit})")
    return (items[index], False) if index < len(items) else (None, True)
