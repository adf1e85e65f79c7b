"""What the step types beyond a plain function do: HTTP, PARALLEL (and its join), LOOP,
FIRE_AND_FORGET, CRON_SCHEDULE, and going on after a sub-workflow.

Each handler takes the :class:`~.executor.StepRunner` of the step and returns the
:class:`~.executor.Transition` it causes; like the runner it writes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..definitions.conditions import ConditionError, compile_expression
from ..definitions.models import StepType, WorkflowDefinition
from ..directives import StartSubWorkflowDirective, WorkflowJumpDirective, WorkflowPauseDirective
from ..errors import StepFailed
from . import parallel
from .executor import Transition, compensate, error_info, merge_result, validated_state
from .records import HistoryEntry, RecordUpdate, Status, StepOutcome, WorkflowRecord
from .templates import render_data

if TYPE_CHECKING:
    from .executor import StepRunner


async def http(runner: StepRunner, state: BaseModel, started: float) -> Transition:
    """Send the request; the response lands under ``output_key``."""
    from .http import run_http_step

    result = await run_http_step(runner.step, runner.record.state, workflow_id=runner.record.id,
                                 idempotency_key=runner.context(None).idempotency_key)
    new_state = merge_result(runner.defn, state, result, runner.step.name)
    return runner._complete(new_state, result, started)


async def run_parallel(runner: StepRunner, state: BaseModel, started: float) -> Transition:
    """On the fleet: the fan-out (the caller stores the branches and sends them).
    In-process: every branch, then the join."""
    step = runner.step
    branches = parallel.plan_branches(step, runner.record.state)
    if runner.fleet and branches:
        # The fleet runs each branch as its own task; the join runs when the last one
        # counts the fan-out down to zero (or its timeout passes).
        runtime = runner._runtime(completed=False)
        runtime["parallel"] = {"step": step.name, "total": len(branches),
                               "deadline": parallel.deadline_for(step)}
        return Transition(
            update=RecordUpdate(Status.PENDING_ASYNC, step.name, runner.record.state, runtime),
            history=[HistoryEntry(step.name, StepOutcome.WAITING, runner.attempt,
                                  runner._ms(started), detail={"branches": len(branches)})],
            step=step.name,
            fanout=branches,
        )
    done = await asyncio.gather(*(_run_branch_inline(runner, b) for b in branches))
    return await join(runner, list(done), started)


async def _run_branch_inline(runner: StepRunner, branch: dict[str, Any]) -> dict[str, Any]:
    """In-process: one branch, its retries and ``timeout_seconds`` (which can cut off
    an ``async def`` branch function; a blocking one runs to its end)."""
    if not runner.step.timeout_seconds:
        return await _attempt_branch(runner, branch)
    try:
        return await asyncio.wait_for(_attempt_branch(runner, branch),
                                      runner.step.timeout_seconds)
    except TimeoutError:
        return {**branch, "status": "PENDING", "result": None, "attempt": 1,
                "error": None, "duration_ms": None}


async def _attempt_branch(runner: StepRunner, branch: dict[str, Any]) -> dict[str, Any]:
    """In-process: run a branch with its retries here; return its outcome row."""
    attempt = 0
    while True:
        attempt += 1
        began = time.perf_counter()
        try:
            result = await parallel.run_branch(runner.defn, runner.step, runner.record, branch,
                                               attempt)
        except Exception as exc:
            policy = runner.policy
            if policy and attempt < policy.max_attempts and not isinstance(exc, StepFailed):
                await asyncio.sleep(policy.delay_for(attempt))
                continue
            return {**branch, "status": "FAILED", "result": None, "attempt": attempt,
                    "error": error_info(runner.step.name, exc), "duration_ms": runner._ms(began)}
        return {**branch, "status": "COMPLETED", "result": result, "attempt": attempt,
                "error": None, "duration_ms": runner._ms(began)}


async def join(runner: StepRunner, branches: list[dict[str, Any]], started: float | None = None
               ) -> Transition:
    """Merge finished branches in declared order and move on; branches still pending
    (past ``timeout_seconds``) count as failed."""
    step = runner.step
    started = time.perf_counter() if started is None else started
    failed = [b for b in branches if b["status"] != "COMPLETED"]
    for branch in failed:
        if branch["status"] == "PENDING":
            branch["error"] = {"message": f"did not report within timeout_seconds "
                                          f"({step.timeout_seconds:g} s)"}
    failures = [{"branch": b["name"], "error": (b.get("error") or {}).get("message")}
                for b in failed]
    if failed and not step.allow_partial_success:
        first = failures[0]
        return await runner._fail(StepFailed(
            step.name, f"{len(failed)} of {len(branches)} branches failed; first, "
                       f"'{first['branch']}': {first['error']}"), started)
    results = [(b["name"], b["result"] or {}) for b in branches
               if b["status"] == "COMPLETED"]
    try:
        merged = parallel.merge_branches(runner.defn, step, runner.record.state, results)
        new_state = validated_state(runner.defn, merged, step.name)
    except Exception as exc:
        return await runner._fail(exc, started)
    transition = runner._complete(new_state, dict(results), started)
    transition.history[0].detail = {**(transition.history[0].detail or {}),
                                    "branches": len(branches),
                                    **({"failed_branches": failures} if failures else {})}
    return transition


def _loop_position(runner: StepRunner, state: dict[str, Any], index: int) -> tuple[Any, bool]:
    """``(item, done)`` for iteration ``index``."""
    step = runner.step
    limit = step.max_iterations
    if (step.mode or "").upper() == "WHILE" or (not step.mode and step.while_condition):
        if not compile_expression(step.while_condition or "false").evaluate(state):
            return None, True
        if limit is not None and index >= limit:
            raise StepFailed(step.name, f"while_condition '{step.while_condition}' is still "
                                        f"true after max_iterations ({limit})")
        return None, False
    items = parallel.items_of(step, state)
    if limit is not None and len(items) > limit:
        raise StepFailed(step.name, f"iterate_over '{step.iterate_over}' has {len(items)} "
                                    f"items, more than max_iterations ({limit})")
    return (items[index], False) if index < len(items) else (None, True)


async def loop(runner: StepRunner, state: BaseModel, started: float) -> Transition:
    """One iteration per transition, so each is committed (and a crash resumes at the
    iteration it interrupted); the last one moves on."""
    step = runner.step
    progress = runner.record.runtime.get("loop") or {}
    index = int(progress.get("index", 0)) if progress.get("step") == step.name else 0
    data = runner.record.state
    item, done = _loop_position(runner, data, index)
    if done:
        return runner._complete(data, None, started)
    item_var = step.item_var_name or "item"
    for fn in runner.defn.loop_body(step):
        context = runner.context(None)
        context.loop_item, context.loop_index = item, index
        kwargs = {item_var: item} if parallel.accepts(fn, item_var) else {}
        try:
            result = await parallel.call(fn, state, context, kwargs)
        except WorkflowJumpDirective as jump:
            return runner._jump(state, jump, started)  # leaves the loop
        except (WorkflowPauseDirective, StartSubWorkflowDirective) as directive:
            raise StepFailed(step.name, f"iteration {index}: a LOOP body cannot "
                                        f"{directive}; end the loop first (make it a step "
                                        "after the LOOP step)") from None
        data = merge_result(runner.defn, state, result, step.name)
        state = runner.defn.state_model.model_validate(data)
    try:
        item, done = _loop_position(runner, data, index + 1)
    except StepFailed:
        done = False  # commit this iteration; the next transition fails the step
    if done:
        transition = runner._complete(data, None, started)
        transition.history[0].detail = {**(transition.history[0].detail or {}),
                                        "iterations": index + 1}
        return transition
    runtime = runner._runtime(completed=False)
    runtime["loop"] = {"step": step.name, "index": index + 1}
    return Transition(
        update=RecordUpdate(Status.ACTIVE, step.name, data, runtime),
        history=[HistoryEntry(step.name, StepOutcome.ITERATED, runner.attempt,
                              runner._ms(started), detail={"iteration": index})],
        step=step.name,
        auto_continue=True,
    )


def _rendered_data(runner: StepRunner) -> dict[str, Any]:
    try:
        data = render_data(runner.step.initial_data_template or {}, runner.record.state)
    except ConditionError as exc:
        raise StepFailed(runner.step.name, f"initial_data_template: {exc}") from None
    return dict(data) if isinstance(data, dict) else {}


async def fire_and_forget(runner: StepRunner, state: BaseModel, started: float) -> Transition:
    """Move on; the caller starts the workflow named in ``transition.spawn``."""
    spawn = {"workflow_type": runner.step.target_workflow_type,
             "initial_data": _rendered_data(runner)}
    transition = runner._complete(runner.record.state, None, started)
    transition.spawn = spawn
    return transition


async def cron_schedule(runner: StepRunner, state: BaseModel, started: float) -> Transition:
    """Move on; the caller stores ``transition.schedule``."""
    from ..scheduling import next_tick

    step = runner.step
    now = dt.datetime.now(dt.UTC)
    next_run = next_tick(step.cron_expression or "", now)
    schedule: dict[str, Any] = {
        "name": step.schedule_name or f"{runner.record.workflow_type}.{step.name}",
        "workflow_type": step.target_workflow_type,
        "cron_expression": step.cron_expression,
        "initial_data": _rendered_data(runner),
        "next_run_at": next_run,
        "created_by": runner.record.id,
    }
    transition = runner._complete(runner.record.state, None, started)
    transition.schedule = schedule
    transition.history[0].detail = {**(transition.history[0].detail or {}),
                                    "schedule": schedule["name"],
                                    "next_run_at": next_run.isoformat()}
    return transition


async def after_child(runner: StepRunner, child: WorkflowRecord) -> Transition:
    """The sub-workflow this step started has ended: go on with its result, or fail
    (FAILED_CHILD_WORKFLOW, or the saga)."""
    started = time.perf_counter()
    if child.status == Status.COMPLETED:
        data = dict(runner.record.state)
        if _accepts_field(runner.defn, "sub_workflow_results"):
            results = dict(data.get("sub_workflow_results") or {})
            results[child.workflow_type] = child.state
            data["sub_workflow_results"] = results
        try:
            new_state = validated_state(runner.defn, data, runner.step.name)
        except StepFailed as exc:
            return await runner._fail(exc, started)
        transition = runner._complete(new_state, child.state, started)
        transition.history[0].detail = {**(transition.history[0].detail or {}),
                                        "sub_workflow": child.id}
        return transition
    reason = (child.error or {}).get("message")
    failure = StepFailed(runner.step.name,
                         f"sub-workflow {child.workflow_type} {child.id} ended {child.status}"
                         + (f": {reason}" if reason else ""))
    transition = runner._fail_now(failure, started)
    transition.update.status = Status.FAILED_CHILD_WORKFLOW
    assert transition.update.error is not None
    transition.update.error.update(type="SubWorkflowFailed", child_id=child.id,
                                   child_status=child.status)
    if runner.defn.saga_enabled:
        await compensate(runner.defn, runner.record, transition)
    return transition


Handler = Callable[["StepRunner", BaseModel, float], Awaitable[Transition]]

#: The handler of each step type that is more than a call of its function.
BY_TYPE: dict[StepType, Handler] = {
    StepType.HTTP: http,
    StepType.PARALLEL: run_parallel,
    StepType.LOOP: loop,
    StepType.FIRE_AND_FORGET: fire_and_forget,
    StepType.CRON_SCHEDULE: cron_schedule,
}


def _accepts_field(defn: WorkflowDefinition, name: str) -> bool:
    model = defn.state_model
    return name in model.model_fields or model.model_config.get("extra") == "allow"
