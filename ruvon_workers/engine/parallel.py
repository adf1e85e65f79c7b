"""PARALLEL steps: plan the branches, run one, merge the results.

The fleet runs each branch as its own task and joins on an atomic counter in PostgreSQL;
in-process every branch runs before ``next_step`` returns. Both merge the same way: in the
declared order of the branches, whatever order they finished in.
"""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any

from pydantic_core import to_jsonable_python

from ..definitions.conditions import compile_expression
from ..definitions.models import StepDefinition, WorkflowDefinition
from ..directives import Directive
from ..errors import StepFailed
from .context import StepContext
from .executor import check_storable
from .records import WorkflowRecord

PREFER_NEW = "PREFER_NEW"
PREFER_EXISTING = "PREFER_EXISTING"
RAISE_ERROR = "RAISE_ERROR"
_MISSING = object()


class MergeConflict(StepFailed):
    """Two branches set one key to different values under RAISE_ERROR."""

    def __init__(self, step: str, key: str, first: str, second: str):
        self.key = key
        super().__init__(step, f"merge conflict on '{key}': branches '{first}' and '{second}' "
                               "set different values (merge_conflict_behavior: RAISE_ERROR)")


def items_of(step: StepDefinition, state: dict[str, Any], what: str = "iterate_over") -> list[Any]:
    """The list ``step.iterate_over`` names in ``state``."""
    path = step.iterate_over or ""
    items = compile_expression(path).evaluate(state)
    if items is None:
        return []
    if isinstance(items, dict | str) or not isinstance(items, list | tuple):
        raise StepFailed(step.name, f"{what} '{path}' gave {type(items).__name__}, not a list")
    return list(items)


def plan_branches(step: StepDefinition, state: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``{idx, name, item}`` per branch: the declared tasks, or the items of
    ``iterate_over`` in groups of ``batch_size``."""
    if step.tasks:
        return [{"idx": i, "name": task.name, "item": None} for i, task in enumerate(step.tasks)]
    items = items_of(step, state)
    size = max(step.batch_size or 1, 1)
    return [{"idx": n, "name": f"{step.name}[{start}]",
             "item": {"start": start, "items": items[start:start + size]}}
            for n, start in enumerate(range(0, len(items), size))]


@functools.lru_cache(maxsize=1024)
def accepts(fn: Any, name: str) -> bool:
    """Whether ``fn`` takes keyword ``name`` (cached: signatures cost ~50 us each)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


async def call(fn: Any, state: Any, context: StepContext, kwargs: dict[str, Any]) -> Any:
    result = fn(state, context, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def changes_of(before: dict[str, Any], after: Any, result: Any, step: str) -> dict[str, Any]:
    """What a branch changed: the fields it changed in place plus the dict it returned."""
    changes = {key: value for key, value in after.model_dump(mode="json").items()
               if before.get(key, _MISSING) != value}
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
                     branch: dict[str, Any], attempt: int) -> dict[str, Any]:
    """Run one branch on a copy of the state; return the changes it makes."""
    try:
        return await _run_branch(defn, step, record, branch, attempt)
    except Directive as directive:
        # Branches run side by side: none of them can steer the workflow alone.
        raise StepFailed(step.name, f"branch {branch['idx']}: a PARALLEL branch cannot "
                                    f"{directive}; do that in a step after the PARALLEL "
                                    "step") from None


async def _run_branch(defn: WorkflowDefinition, step: StepDefinition, record: WorkflowRecord,
                      branch: dict[str, Any], attempt: int) -> dict[str, Any]:
    base = StepContext(workflow_id=record.id, step_name=step.name, attempt=attempt,
                       idempotency_key=f"{record.id}:{step.name}:{record.version}:"
                                       f"{branch['idx']}",
                       workflow_type=record.workflow_type)
    if step.tasks:
        fn = defn.function(step.tasks[branch["idx"]].function_path)
        state = defn.state_model.model_validate(record.state)
        base.loop_index = branch["idx"]
        return changes_of(record.state, state, await call(fn, state, base, {}), step.name)
    fn = defn.function(step.task_function)
    item_var = step.item_var_name or "item"
    merged: dict[str, Any] = {}
    owners: dict[tuple[str, ...], str] = {}
    item = branch["item"] or {"start": 0, "items": []}
    for offset, value in enumerate(item["items"]):
        index = item["start"] + offset
        state = defn.state_model.model_validate(record.state)
        context = StepContext(**{**base.__dict__, "loop_item": value, "loop_index": index})
        kwargs = {item_var: value} if accepts(fn, item_var) else {}
        changes = changes_of(record.state, state, await call(fn, state, context, kwargs),
                             step.name)
        merge_into(merged, changes, step, owners, f"{step.name}[{index}]")
    return merged


def merge_into(target: dict[str, Any], incoming: dict[str, Any], step: StepDefinition,
               owners: dict[tuple[str, ...], str], branch: str,
               prefix: tuple[str, ...] = ()) -> None:
    """Merge one branch's changes into ``target`` per the step's strategy and conflict rule.

    ``owners`` remembers which branch set each key: a key set by an earlier branch is a
    conflict; a value that was only in the state is not (PREFER_EXISTING still keeps it
    unless it is null).
    """
    deep = (step.merge_strategy or "SHALLOW").upper() == "DEEP"
    behavior = (step.merge_conflict_behavior or PREFER_NEW).upper()
    for key, value in incoming.items():
        path = (*prefix, key)
        existing = target.get(key, _MISSING)
        if deep and isinstance(value, dict) and isinstance(existing, dict):
            target[key] = dict(existing)
            merge_into(target[key], value, step, owners, branch, path)
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
    """The new state values after merging ``results`` (in declared order) into ``state``."""
    merge_fn = defn.function(step.merge_function_path)
    if merge_fn is not None:
        model = defn.state_model.model_validate(state)
        merged = merge_fn(model, dict(results))
        if merged is None:
            return model.model_dump(mode="json")
        if not isinstance(merged, dict):
            raise StepFailed(step.name, f"merge function returned {type(merged).__name__}, "
                                        "not a dict of state fields")
        return {**model.model_dump(mode="json"), **to_jsonable_python(merged)}
    target = dict(state)
    owners: dict[tuple[str, ...], str] = {}
    for name, changes in results:
        merge_into(target, changes, step, owners, name)
    return target


def deadline_for(step: StepDefinition) -> float | None:
    return time.time() + step.timeout_seconds if step.timeout_seconds else None
