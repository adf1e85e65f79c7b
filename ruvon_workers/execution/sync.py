"""Run steps in the caller's process, one ``next_step`` at a time (Ruvon's default).

The rules are the engine's (:mod:`ruvon_workers.engine.machine`), as on the fleet; what
differs is only where the next thing runs: here, now, in this process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
from typing import TYPE_CHECKING, Any

from ..definitions.models import WorkflowDefinition
from ..engine.context import StepContext
from ..engine.machine import ChildChanged, Join, RunStep, decide
from ..engine.records import WAITS_FOR_CHILD, Branch, Status, WorkflowRecord
from ..engine.runner import StepRunner
from ..engine.steps.parallel import COMPLETED, FAILED, run_branch
from ..engine.transition import Transition, elapsed_ms, error_info
from ..engine.values import accepted
from ..errors import (
    InvalidTransition,
    SagaWorkflowException,
    StaleStateError,
    UnstorableValue,
    WorkflowFailedException,
)
from ..observers import report
from .effects import Created, prepare_effects, refused, undo
from .operations import cancel_tree

if TYPE_CHECKING:
    from ..workflow import Workflow

log = logging.getLogger("ruvon.sync")


class SyncExecutionProvider:
    """Executes the current step in-process and commits it with compare-and-set.

    Steps with ``automate_next: true`` chain into the next step within the same call;
    retries with a ``retry_policy`` wait here (``asyncio.sleep``) and run again. A LOOP
    runs all its iterations (each committed), and a PARALLEL step all its branches at
    once (``async def`` branch functions on the event loop, others in threads), before
    the call returns. A sub-workflow runs here too, until it ends or waits for input;
    the parent then goes on (or, while its child waits, ``next_step`` on the parent
    says so). A FIRE_AND_FORGET workflow is started and run here, and the parent goes on
    whatever it does; CRON schedules are stored for a fleet's scheduler to fire.
    """

    #: A sub-workflow runs within its parent's ``next_step``. Off (Ruvon's
    #: ``SyncExecutor``), the parent returns at once, PENDING_SUB_WORKFLOW; the program
    #: drives the child, whose every step chains into the next, and the parent goes on
    #: with its next step as soon as the child ends.
    runs_children = True

    def initial_due_in(self) -> float | None:
        return None

    async def on_created(self, record: WorkflowRecord) -> None:
        return None

    async def run_next(self, workflow: Workflow,
                       user_input: dict[str, Any]) -> tuple[Any, str | None]:
        if workflow.record.status in WAITS_FOR_CHILD:
            return await self._after_child(workflow)
        result: Any = None
        jumped_to: str | None = None
        while True:
            record = workflow.record
            transition = await decide(workflow.definition, record,
                                      # no input given: the input a resume stored
                                      RunStep(user_input or None, previous_result=result))
            assert transition is not None
            transition, started, created = await self._prepare(workflow, transition)
            if transition.fanout:
                transition = await self._fan_out(workflow, transition)
            await self._commit_step(workflow, transition, created)
            workflow.last_step = transition.step
            if transition.retry_delay is not None:
                await asyncio.sleep(transition.retry_delay)
                continue
            for other in started:
                if other.parent_id != workflow.id:
                    await self._run_spawned(workflow, other)
            raise_if_failed(workflow, transition.cause)
            result, jumped_to = transition.result, transition.jumped_to
            if not self.runs_children and workflow.record.parent_id:
                if Status(workflow.record.status).is_terminal \
                        or workflow.record.status == Status.WAITING_HUMAN:
                    await self._wake_parent(workflow, workflow.record)
                elif workflow.record.status == Status.ACTIVE and not jumped_to \
                        and transition.child is None:
                    user_input = {}
                    continue  # Ruvon: a child's steps chain
            if transition.child is not None and started and not self.runs_children:
                return result, jumped_to
            if transition.child is not None and started:
                child = await self._run_to_rest(workflow, started[0])
                if not Status(child.status).is_terminal:
                    await self._child_changed(workflow, child.record)
                    return result, jumped_to  # the child waits for input
                return await self._after_child(workflow)
            if not transition.auto_continue:
                return result, jumped_to
            user_input = {}

    async def _prepare(self, workflow: Workflow, transition: Transition
                       ) -> tuple[Transition, list[WorkflowRecord], Created]:
        if workflow.builder is None:
            return transition, [], Created()
        return await prepare_effects(workflow.builder, workflow.persistence,
                                     workflow.definition, workflow.record, transition,
                                     lambda record: None)

    async def _commit_step(self, workflow: Workflow, transition: Transition,
                           created: Created) -> None:
        try:
            await self._commit(workflow, transition)
        except StaleStateError:
            await self._undo(workflow, created)  # what only this attempt started
            raise

    @staticmethod
    async def _undo(workflow: Workflow, created: Created) -> None:
        """The commit lost: cancel or delete what this attempt alone started."""
        builder = workflow.builder
        if builder is None:
            return

        async def definition(record: WorkflowRecord) -> WorkflowDefinition:
            return await builder.registry.for_record(workflow.persistence, record)

        async def ended(record: WorkflowRecord) -> None:
            return None

        async def cancel(run_id: str, reason: str) -> None:
            await cancel_tree(workflow.persistence, definition, run_id, reason, ended)

        await undo(workflow.persistence, workflow.id, created, cancel)

    async def _fan_out(self, workflow: Workflow, transition: Transition) -> Transition:
        """Run a PARALLEL step's branches here, all at once, then join them: the same
        retry, timeout, merge and partial-success rules as the fleet's."""
        defn, record = workflow.definition, workflow.record
        runner = StepRunner(defn, record)
        step = runner.step
        started = time.perf_counter()

        async def branch(plan: Branch) -> Branch:
            outcome = Branch(plan.idx, plan.name, item=plan.item)
            began = time.perf_counter()
            while True:
                outcome.attempt += 1
                try:
                    outcome.result = await run_branch(defn, step, record, plan,
                                                      outcome.attempt, call=_call_in_thread)
                    outcome.status = COMPLETED
                except Exception as exc:
                    delay = runner.retry_delay(exc, outcome.attempt)
                    if delay is not None:
                        await asyncio.sleep(delay)
                        continue
                    outcome.status, outcome.error = FAILED, error_info(step.name, exc)
                outcome.duration_ms = elapsed_ms(began)
                return outcome

        plans = transition.fanout or []
        tasks = [asyncio.ensure_future(branch(plan)) for plan in plans]
        done, pending = await asyncio.wait(tasks, timeout=step.timeout_seconds)
        for task in pending:
            task.cancel()  # a blocking function in its thread runs on, unheard
        outcomes = [task.result() if task in done else plan
                    for task, plan in zip(tasks, plans, strict=True)]
        joined = await decide(defn, record, Join(outcomes, started))
        assert joined is not None
        return joined

    @staticmethod
    async def _commit(workflow: Workflow, transition: Transition) -> None:
        record = workflow.record
        before = dataclasses.replace(record) if workflow.observer is not None else record
        try:
            version = await workflow.persistence.apply(
                workflow.id, record.version, transition.update, transition.history)
        except UnstorableValue as exc:
            failure = await refused(workflow.definition, record, transition, exc)
            if failure is None:
                raise
            version = await workflow.persistence.apply(
                workflow.id, record.version, failure.update, failure.history)
            transition = failure
        transition.update.applied_to(record, version)
        if workflow.observer is not None:
            await report(workflow.observer, before, transition, record,
                         workflow.definition.index_of(transition.step))

    async def _load(self, workflow: Workflow, record_id: str) -> Workflow:
        assert workflow.builder is not None
        return await workflow.builder.load_workflow(
            record_id, persistence_provider=workflow.persistence, execution_provider=self)

    async def _run_to_rest(self, workflow: Workflow, record: WorkflowRecord) -> Workflow:
        """Run ``record``'s workflow until it ends or waits for input."""
        other = await self._load(workflow, record.id)
        while other.status == Status.ACTIVE:
            try:
                await other.next_step()
            except WorkflowFailedException:
                break
        return other

    async def _run_spawned(self, workflow: Workflow, record: WorkflowRecord) -> None:
        try:
            await self._run_to_rest(workflow, record)
        except Exception:  # independent: its failure is its own, not the parent's
            log.exception("spawned workflow %s failed", record.id)

    async def _child_changed(self, parent: Workflow, child: WorkflowRecord) -> None:
        """Show on the parent where its (still running) sub-workflow stands."""
        transition = await decide(parent.definition, parent.record, ChildChanged(child))
        if transition is not None:
            await self._commit(parent, transition)

    async def _after_child(self, workflow: Workflow) -> tuple[Any, str | None]:
        known = workflow.record.runtime.child or {}
        child = await workflow.persistence.load_workflow(known.get("id", ""))
        if child is None or not Status(child.status).is_terminal:
            where = f" at step '{child.current_step}'" if child else ""
            raise InvalidTransition(
                workflow.id, Status.PENDING_SUB_WORKFLOW, "run the next step of",
                f"Its sub-workflow {known.get('id')} is "
                f"{child.status if child else 'missing'}{where}; run that one first.")
        transition = await decide(workflow.definition, workflow.record, ChildChanged(child))
        assert transition is not None
        await self._commit(workflow, transition)
        raise_if_failed(workflow)
        return transition.result, transition.jumped_to

    async def cancel(self, workflow: Workflow, reason: str) -> None:
        """Cancel the run (and the sub-workflow it waits for); a parent waiting for a
        cancelled run learns it ended at once, as on the fleet."""
        async def definition(record: WorkflowRecord) -> WorkflowDefinition:
            if workflow.builder is None or record.id == workflow.id:
                return workflow.definition
            return await workflow.builder.registry.for_record(workflow.persistence, record)

        async def ended(record: WorkflowRecord) -> None:
            await self._wake_parent(workflow, record)

        workflow.record = await cancel_tree(workflow.persistence, definition, workflow.id,
                                            reason, ended)

    async def _wake_parent(self, workflow: Workflow, child: WorkflowRecord) -> None:
        """A sub-workflow ended: its parent (waiting for it here) goes on at once."""
        parent_link = child.runtime.parent
        if parent_link is None or workflow.builder is None:
            return
        parent = await workflow.persistence.load_workflow(parent_link["id"])
        if parent is None or parent.status not in WAITS_FOR_CHILD \
                or (parent.runtime.child or {}).get("id") != child.id:
            return
        waiting = await self._load(workflow, parent.id)
        if not Status(child.status).is_terminal:
            await self._child_changed(waiting, child)  # it waits for input
            return
        try:
            await self._after_child(waiting)
        except WorkflowFailedException:
            pass  # the parent ended failed: that is its own outcome, not the caller's


async def _call_in_thread(fn: Any, state: Any, context: StepContext,
                          kwargs: dict[str, Any]) -> Any:
    """Call a branch function so that branches run at the same time: ``async def`` ones
    on the loop, blocking ones in a thread."""
    kwargs = accepted(fn, kwargs)
    if inspect.iscoroutinefunction(fn):
        return await fn(state, context, **kwargs)
    result = await asyncio.to_thread(fn, state, context, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def raise_if_failed(workflow: Workflow, cause: BaseException | None = None) -> None:
    """Raise what a failed run raises from ``next_step``; ``cause``: what the step
    raised, when known."""
    try:
        _raise_for_status(workflow)
    except (SagaWorkflowException, WorkflowFailedException) as exc:
        if cause is not None and exc.original_exception is None:
            exc.original_exception = cause
        raise


def _raise_for_status(workflow: Workflow) -> None:
    status = workflow.record.status
    error = workflow.record.error or {}
    message = f"{error.get('type', 'Error')}: {error.get('message', '')}"
    if status == Status.FAILED_ROLLED_BACK:
        raise SagaWorkflowException(
            f"Workflow {workflow.id} rolled back after step '{error.get('step')}' failed: "
            f"{message}", workflow_id=workflow.id, step=error.get("step"),
            compensated=error.get("compensated", []))
    if status in (Status.FAILED, Status.FAILED_CHILD_WORKFLOW):
        raise WorkflowFailedException(
            f"Workflow {workflow.id} failed at step '{error.get('step')}': {message}",
            workflow_id=workflow.id, step=error.get("step"))
