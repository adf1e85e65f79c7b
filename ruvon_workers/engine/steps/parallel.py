"""PARALLEL: plan the branches, run one, decide a failed one, merge them, join.

Running the step plans the fan-out (``Transition.fanout``, status PENDING_ASYNC); the
caller runs the branches (the fleet one task each, in-process all at once), reports each
outcome, and calls :func:`join` once all have reported or ``timeout_seconds`` has passed.
Both merge the same way: in the declared order of the branches, whatever order they
finished in.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from ...definitions.conditions import compile_expression
from ...definitions.models import StepDefinition, WorkflowDefinition
from ...directives import Directive
from ...errors import MergeConflict, StepFailed
from ...settings import max_branches
from ..context import StepContext
from ..records import Branch, HistoryEntry, RecordUpdate, Status, StepOutcome, WorkflowRecord
from ..transition import Transition, elapsed_ms
from ..values import (
    StepFunction,
    call_step_function,
    check_storable,
    positional_count,
    state_dict,
    validated_state,
)
from .base import Problem, StepKind

if TYPE_CHECKING:
    from ..runner import StepRunner

SHALLOW, DEEP, REPLACE, APPEND = "SHALLOW", "DEEP", "REPLACE", "APPEND"
OVERWRITE_EXISTING, PRESERVE_EXISTING = "OVERWRITE_EXISTING", "PRESERVE_EXISTING"
PREFER_NEW = "PREFER_NEW"
PREFER_EXISTING = "PREFER_EXISTING"
RAISE_ERROR = "RAISE_ERROR"
#: Ruvon's six strategies (the model takes any case).
MERGE_STRATEGIES = (SHALLOW, DEEP, REPLACE, APPEND, OVERWRITE_EXISTING, PRESERVE_EXISTING)
#: ``PREFER_OLD`` is read as ``PREFER_EXISTING``.
CONFLICT_BEHAVIORS = (PREFER_NEW, PREFER_EXISTING, RAISE_ERROR)
_MISSING = object()

#: How a branch function is called: ``call(fn, state, context, kwargs)``.
Caller = Callable[[StepFunction, Any, StepContext, dict[str, Any]], Awaitable[object]]

#: Branch statuses.
PENDING, COMPLETED, FAILED = "PENDING", "COMPLETED", "FAILED"


def strategy_problems(step: StepDefinition) -> Iterable[Problem]:
    """An unknown ``merge_strategy`` or ``merge_conflict_behavior`` (PARALLEL, ASYNC)."""
    if step.merge_strategy not in MERGE_STRATEGIES:
        yield "merge_strategy", (f"merge_strategy '{step.merge_strategy}' is not one of "
                                 f"{', '.join(MERGE_STRATEGIES)} (in any case)")
    if step.merge_conflict_behavior not in CONFLICT_BEHAVIORS:
        yield "merge_conflict_behavior", (
            f"merge_conflict_behavior '{step.merge_conflict_behavior}' is not one of "
            f"{', '.join(CONFLICT_BEHAVIORS)} (in any case; PREFER_OLD is "
            "PREFER_EXISTING)")


class ParallelStep(StepKind):
    required_fields = ()

    def problems(self, step: StepDefinition) -> Iterable[Problem]:
        if not (step.tasks or step.iterate_over):
            yield "tasks", "a PARALLEL step needs 'tasks' or 'iterate_over'"
        if step.iterate_over and not step.task_function:
            yield "task_function", "a PARALLEL step with 'iterate_over' needs 'task_function'"
        yield from strategy_problems(step)
        if step.batch_size is not None and step.batch_size < 0:
            yield "batch_size", ("batch_size must be 0 (one item per branch, as when it is "
                                 "left out) or more")
        if step.max_branches is not None and step.max_branches < 1:
            yield "max_branches", "max_branches must be 1 or more"
        if step.timeout_seconds is not None and step.timeout_seconds <= 0:
            yield "timeout_seconds", "timeout_seconds must be more than 0"

    async def run(self, runner: StepRunner, state: BaseModel, validated: BaseModel | None,
                  started: float) -> Transition:
        """Plan the fan-out: the run waits (PENDING_ASYNC) until its branches report."""
        step = runner.step
        branches = plan_branches(step, runner.record.state)
        if not branches:
            return await join(runner, [], started)
        runtime = runner.runtime_after(completed=False)
        runtime.parallel = {"step": step.name, "total": len(branches),
                            "deadline": deadline_for(step)}
        return Transition(
            update=RecordUpdate(Status.PENDING_ASYNC, step.name, runner.record.state, runtime),
            history=[HistoryEntry(step.name, StepOutcome.WAITING, runner.attempt,
                                  elapsed_ms(started), detail={"branches": len(branches)})],
            step=step.name,
            fanout=branches,
        )


def items_of(step: StepDefinition, state: dict[str, Any], what: str = "iterate_over") -> list[Any]:
    """The list ``step.iterate_over`` names in ``state``."""
    path = step.iterate_over or ""
    items = compile_expression(path).evaluate(state)
    if items is None:
        return []
    if isinstance(items, dict | str) or not isinstance(items, list | tuple):
        raise StepFailed(step.name, f"{what} '{path}' gave {type(items).__name__}, not a list")
    return list(items)


def plan_branches(step: StepDefinition, state: dict[str, Any]) -> list[Branch]:
    """One branch per declared task, or per group of ``batch_size`` items of
    ``iterate_over`` (0, Ruvon's "no batching", and unset mean one item per branch).
    With both, ``iterate_over`` wins, as on Ruvon. More branches than ``max_branches``
    (unset: ``RUVON_MAX_BRANCHES``) fail the step before any is stored."""
    if not step.iterate_over:
        _check_branch_count(step, len(step.tasks))
        return [Branch(i, task.name) for i, task in enumerate(step.tasks)]
    items = items_of(step, state)
    size = step.batch_size or 1
    _check_branch_count(step, -(-len(items) // size))
    return [Branch(n, f"{step.name}[{start}]",
                   item={"start": start, "items": items[start:start + size]})
            for n, start in enumerate(range(0, len(items), size))]


def _check_branch_count(step: StepDefinition, count: int) -> None:
    limit = step.max_branches if step.max_branches is not None else max_branches()
    if count <= limit:
        return
    given = "" if step.max_branches is not None else \
        ", the default from RUVON_MAX_BRANCHES; set max_branches on the step to allow more"
    hint = "; batch_size runs several items per branch" if step.iterate_over else ""
    raise StepFailed(step.name, f"{count} branches, more than max_branches ({limit}{given})"
                                f"{hint}")


def deadline_for(step: StepDefinition) -> float | None:
    return time.time() + step.timeout_seconds if step.timeout_seconds else None


def changes_of(before: dict[str, Any], after: dict[str, Any], result: object, step: str, *,
               append: bool = False) -> dict[str, Any]:
    """What a branch changed: the keys it changed in its copy of the state plus the dict
    it returned.

    With ``append`` (the APPEND strategy), a list the branch extended in place counts as
    the items it added, as a returned list does.
    """
    changes = {key: value for key, value in to_jsonable_python(after).items()
               if before.get(key, _MISSING) != value}
    if append:
        for key, value in changes.items():
            old = before.get(key)
            if (isinstance(old, list) and isinstance(value, list)
                    and value[:len(old)] == old):
                changes[key] = value[len(old):]
    if result is None:
        return changes
    if hasattr(result, "model_dump"):
        result = result.model_dump(mode="json")
    if not isinstance(result, dict):
        raise StepFailed(step, f"returned {type(result).__name__}; a branch returns a dict "
                               "of state fields to merge, or None")
    changes.update(to_jsonable_python(result))
    check_storable(changes, step, "branch result field")
    return changes


async def run_branch(defn: WorkflowDefinition, step: StepDefinition, record: WorkflowRecord,
                     branch: Branch, attempt: int, *,
                     call: Caller = call_step_function) -> dict[str, Any]:
    """Run one branch on a copy of the state; return the changes it makes."""
    try:
        return await _run_branch(defn, step, record, branch, attempt, call)
    except Directive as directive:
        # Branches run side by side: none of them can steer the workflow alone.
        raise StepFailed(step.name, f"branch {branch.idx}: a PARALLEL branch cannot "
                                    f"{directive}; do that in a step after the PARALLEL "
                                    "step") from None


async def _run_branch(defn: WorkflowDefinition, step: StepDefinition, record: WorkflowRecord,
                      branch: Branch, attempt: int, call: Caller) -> dict[str, Any]:
    # Ruvon's convention: a task gets a copy of the state as a dict, and a context named
    # after the task (``<step>_<index>`` for each item of ``iterate_over``).
    base = StepContext(workflow_id=record.id, step_name=step.name, attempt=attempt,
                       idempotency_key=f"{record.id}:{step.name}:{record.version}:"
                                       f"{branch.idx}",
                       workflow_type=record.workflow_type)
    # A merge function gets each branch's changes as they are.
    append = step.merge_strategy == APPEND and not step.merge_function_path
    if not step.iterate_over:
        task = step.tasks[branch.idx]
        fn = defn.function(task.function_path)
        state = state_dict(record.state)
        base.loop_index = branch.idx
        base.step_name = task.name
        return kept(step, record.state, changes_of(
            record.state, state, await call(fn, state, base, {}), step.name, append=append))
    fn = defn.function(step.task_function)
    item_var = step.item_var_name or "item"
    merged: dict[str, Any] = {}
    owners: dict[tuple[str, ...], str] = {}
    item = branch.item or {"start": 0, "items": []}
    for offset, value in enumerate(item["items"]):
        index = item["start"] + offset
        state = state_dict(record.state)
        context = StepContext(**{**base.__dict__, "step_name": f"{step.name}_{index}",
                                 "loop_item": value, "loop_index": index})
        changes = changes_of(record.state, state,
                             await call(fn, state, context, {item_var: value}),
                             step.name, append=append)
        merge_into(merged, kept(step, record.state, changes), step, owners,
                   f"{step.name}[{index}]")
    return merged


def kept(step: StepDefinition, state: dict[str, Any], changes: dict[str, Any]
          ) -> dict[str, Any]:
    """The changes the strategy lets through: PRESERVE_EXISTING sets only keys the state
    lacks (a merge function gets them all)."""
    if step.merge_strategy != PRESERVE_EXISTING or step.merge_function_path:
        return changes
    return {key: value for key, value in changes.items() if key not in state}


def merge_into(target: dict[str, Any], incoming: dict[str, Any], step: StepDefinition,
               owners: dict[tuple[str, ...], str], branch: str,
               prefix: tuple[str, ...] = ()) -> None:
    """Merge one branch's changes into ``target`` per the step's strategy and conflict rule.

    ``owners`` remembers which branch set each key: a key set by an earlier branch is a
    conflict; a value that was only in the state is not (PREFER_EXISTING still keeps it
    unless it is null). APPEND extends a list with a list (never a conflict);
    OVERWRITE_EXISTING always lets the later value win.
    """
    strategy = step.merge_strategy
    behavior = PREFER_NEW if strategy == OVERWRITE_EXISTING else step.merge_conflict_behavior
    for key, value in incoming.items():
        path = (*prefix, key)
        existing = target.get(key, _MISSING)
        if strategy == DEEP and isinstance(value, dict) and isinstance(existing, dict):
            target[key] = dict(existing)
            merge_into(target[key], value, step, owners, branch, path)
            continue
        if strategy == APPEND and isinstance(value, list) and isinstance(existing, list):
            target[key] = [*existing, *value]
            owners[path] = branch
            continue
        if existing is not _MISSING and existing != value:
            # Set by an earlier branch: this key, or a dict holding it, came from one.
            owner = next((owners[path[:n]] for n in range(len(path), 0, -1)
                          if path[:n] in owners), None)
            if owner is not None and owner != branch:
                if behavior == RAISE_ERROR:
                    raise MergeConflict(step.name, ".".join(path), owner, branch)
                if behavior == PREFER_EXISTING:
                    continue
            elif owner is None and behavior == PREFER_EXISTING and existing is not None:
                continue
        target[key] = value
        owners[path] = branch


def merge_branches(defn: WorkflowDefinition, step: StepDefinition, state: dict[str, Any],
                   results: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The new state values after merging ``results`` (in declared order) into ``state``;
    under REPLACE, the merged results are the new state (other fields take their
    defaults)."""
    merge_fn = defn.function(step.merge_function_path)
    if merge_fn is not None:
        # Ruvon's two forms: ``merge(results)`` and ``merge(state_dict, results)``, the
        # branches' results in declared order; what it returns is merged into the state.
        outcomes = [changes for _, changes in results]
        merged = (merge_fn(outcomes) if positional_count(merge_fn) == 1
                  else merge_fn(state_dict(state), outcomes))
        if merged is None:
            return dict(state)
        if not isinstance(merged, dict):
            raise StepFailed(step.name, f"merge function returned {type(merged).__name__}, "
                                        "not a dict of state fields")
        return {**state, **to_jsonable_python(merged)}
    target = {} if step.merge_strategy == REPLACE else dict(state)
    owners: dict[tuple[str, ...], str] = {}
    for name, changes in results:
        merge_into(target, changes, step, owners, name)
    return target


def due_to_join(outcomes: list[Branch], deadline: float | None) -> bool:
    """Whether the fan-out joins now: every branch reported, or its timeout passed."""
    pending = sum(1 for b in outcomes if b.status == PENDING)
    return pending == 0 or (deadline is not None and time.time() >= deadline)


async def join(runner: StepRunner, branches: list[Branch],
               started: float | None = None) -> Transition:
    """Merge finished branches in declared order and move on; branches still pending
    (past ``timeout_seconds``) count as failed."""
    step = runner.step
    started = time.perf_counter() if started is None else started
    branches = sorted(branches, key=lambda b: b.idx)
    failed = [b for b in branches if b.status != COMPLETED]
    for branch in failed:
        if branch.status == PENDING:
            branch.error = {"message": f"did not report within timeout_seconds "
                                       f"({step.timeout_seconds or 0:g} s)"}
    failures = [{"branch": b.name, "error": (b.error or {}).get("message")} for b in failed]
    if failed and not step.allow_partial_success:
        first = failures[0]
        return await runner.fail(StepFailed(
            step.name, f"{len(failed)} of {len(branches)} branches failed; first, "
                       f"'{first['branch']}': {first['error']}"), started, retry=False)
    results = [(b.name, b.result or {}) for b in branches if b.status == COMPLETED]
    try:
        merged = merge_branches(runner.defn, step, runner.record.state, results)
        new_state = validated_state(runner.defn, merged, step.name)
    except Exception as exc:
        return await runner.fail(exc, started, retry=False)
    transition = runner.complete(new_state, dict(results), started)
    transition.add_detail(branches=len(branches),
                          **({"failed_branches": failures} if failures else {}))
    return transition
