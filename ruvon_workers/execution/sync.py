"""Run steps in the caller's process, one ``next_step`` at a time (Ruvon's default)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..engine.executor import StepRunner, Transition
from ..engine.records import Status, WorkflowRecord
from ..errors import InvalidTransition, SagaWorkflowException, WorkflowFailedException
from .effects import prepare

if TYPE_CHECKING:
    from ..workflow import Workflow

log = logging.getLogger("ruvon.sync")


class SyncExecutionProvider:
    """Executes the current step in-process and commits it with compare-and-set.

    Steps with ``automate_next: true`` chain into the next step within the same call;
    retries with a ``retry_policy`` wait here (``asyncio.sleep``) and run again. A LOOP
    runs all its iterations (each committed) and a PARALLEL step all its branches before
    the call returns. A sub-workflow runs here too, until it ends or waits for input;
    the parent then goes on (or, while its child waits, ``next_step`` on the parent
    says so). A FIRE_AND_FORGET workflow is started and run here, and the parent goes on
    whatever it does; CRON schedules are stored for a fleet's scheduler to fire.
    """

    def initial_due_in(self) -> float | None:
        return None

    async def on_created(self, record: WorkflowRecord) -> None:
        return None

    async def run_next(self, workflow: Workflow,
                       user_input: dict[str, Any]) -> tuple[Any, str | None]:
        if workflow.status == Status.PENDING_SUB_WORKFLOW:
            return await self._after_child(workflow)
        result: Any = None
        jumped_to: str | None = None
        while True:
            runner = StepRunner(workflow.definition, workflow.record, user_input=user_input,
                                previous_result=result)
            transition, started = await self._prepare(workflow, runner, await runner.run())
            await self._commit(workflow, transition)
            if transition.retry_delay is not None:
                await asyncio.sleep(transition.retry_delay)
                continue
            for other in started:
                if other.parent_id != workflow.id:
                    await self._run_spawned(workflow, other)
            _raise_if_failed(workflow)
            result, jumped_to = transition.result, transition.jumped_to
            if transition.child is not None and started:
                child = await self._run_to_rest(workflow, started[0])
                if not Status(child.status).is_terminal:
                    return result, jumped_to  # the child waits for input
                return await self._after_child(workflow)
            if not transition.auto_continue:
                return result, jumped_to
            user_input = {}

    async def _prepare(self, workflow: Workflow, runner: StepRunner, transition: Transition
                       ) -> tuple[Transition, list[WorkflowRecord]]:
        if workflow.builder is None:
            return transition, []
        return await prepare(workflow.builder, workflow.persistence, runner, transition,
                             lambda record: None)

    @staticmethod
    async def _commit(workflow: Workflow, transition: Transition) -> None:
        version = await workflow.persistence.apply(
            workflow.id, workflow.record.version, transition.update, transition.history)
        transition.update.applied_to(workflow.record, version)

    async def _load(self, workflow: Workflow, record: WorkflowRecord) -> Workflow:
        assert workflow.builder is not None
        return await workflow.builder.load_workflow(
            record.id, persistence_provider=workflow.persistence, execution_provider=self)

    async def _run_to_rest(self, workflow: Workflow, record: WorkflowRecord) -> Workflow:
        """Run ``record``'s workflow until it ends or waits for input."""
        other = await self._load(workflow, record)
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

    async def _after_child(self, workflow: Workflow) -> tuple[Any, str | None]:
        known = workflow.record.runtime.get("child") or {}
        child = await workflow.persistence.load_workflow(known.get("id", ""))
        if child is None or not Status(child.status).is_terminal:
            where = f" at step '{child.current_step}'" if child else ""
            raise InvalidTransition(
                workflow.id, Status.PENDING_SUB_WORKFLOW, "run the next step of",
                f"Its sub-workflow {known.get('id')} is "
                f"{child.status if child else 'missing'}{where}; run that one first.")
        runner = StepRunner(workflow.definition, workflow.record)
        transition = await runner.after_child(child)
        await self._commit(workflow, transition)
        _raise_if_failed(workflow)
        return transition.result, transition.jumped_to


def _raise_if_failed(workflow: Workflow) -> None:
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
