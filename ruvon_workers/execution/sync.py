"""Run steps in the caller's process, one ``next_step`` at a time (Ruvon's default)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..engine.executor import StepRunner
from ..engine.records import Status, WorkflowRecord
from ..errors import SagaWorkflowException, WorkflowFailedException

if TYPE_CHECKING:
    from ..workflow import Workflow


class SyncExecutionProvider:
    """Executes the current step in-process and commits it with compare-and-set.

    Steps with ``automate_next: true`` chain into the next step within the same call;
    retries with a ``retry_policy`` wait here (``asyncio.sleep``) and run again.
    """

    def initial_due_in(self) -> float | None:
        return None

    async def on_created(self, record: WorkflowRecord) -> None:
        return None

    async def run_next(self, workflow: Workflow,
                       user_input: dict[str, Any]) -> tuple[Any, str | None]:
        result: Any = None
        jumped_to: str | None = None
        while True:
            runner = StepRunner(workflow.definition, workflow.record, user_input=user_input,
                                previous_result=result)
            transition = await runner.run()
            version = await workflow.persistence.apply(
                workflow.id, workflow.record.version, transition.update, transition.history)
            transition.update.applied_to(workflow.record, version)
            if transition.retry_delay is not None:
                await asyncio.sleep(transition.retry_delay)
                continue
            _raise_if_failed(workflow)
            result, jumped_to = transition.result, transition.jumped_to
            if transition.child is not None:
                await self._run_child(workflow, transition.child)
                return result, jumped_to
            if not transition.auto_continue:
                return result, jumped_to
            user_input = {}

    async def _run_child(self, workflow: Workflow, child: Any) -> None:
        from ..engine.records import RecordUpdate

        # Sub-workflows run on the fleet; in-process they are not supported yet.
        update = RecordUpdate.keep(workflow.record, status=Status.FAILED, error={
            "step": workflow.current_step_name, "type": "NotSupported",
            "message": f"sub-workflow '{child.workflow_type}' needs the Celery fleet"})
        version = await workflow.persistence.apply(workflow.id, workflow.record.version,
                                                   update, [])
        update.applied_to(workflow.record, version)
        _raise_if_failed(workflow)


def _raise_if_failed(workflow: Workflow) -> None:
    status = workflow.record.status
    error = workflow.record.error or {}
    message = f"{error.get('type', 'Error')}: {error.get('message', '')}"
    if status == Status.FAILED_ROLLED_BACK:
        raise SagaWorkflowException(
            f"Workflow {workflow.id} rolled back after step '{error.get('step')}' failed: "
            f"{message}", workflow_id=workflow.id, step=error.get("step"),
            compensated=error.get("compensated", []))
    if status == Status.FAILED:
        raise WorkflowFailedException(
            f"Workflow {workflow.id} failed at step '{error.get('step')}': {message}",
            workflow_id=workflow.id, step=error.get("step"))
