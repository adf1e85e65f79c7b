"""``CeleryExecutionProvider``: every step is a task on the Celery fleet."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ruvon_workers.engine.records import Status, WorkflowRecord
from ruvon_workers.execution.celery import CeleryExecutionProvider as _FleetProvider
from ruvon_workers.execution.sync import raise_if_failed
from ruvon_workers.observers import report_history

if TYPE_CHECKING:
    from ruvon_workers.workflow import Workflow


class CeleryExecutionProvider(_FleetProvider):
    """Hands every step to the fleet (``CELERY_BROKER_URL``, ``RUVON_REGISTRY``); Ruvon's
    ``workflow_builder`` argument is accepted.

    As a Ruvon program expects, ``next_step`` returns once the fleet has run the step:
    since the fleet goes on with the following steps by itself, that is when the run
    comes to rest (it ends, waits for input, or waits for a sub-workflow that waits for
    input). A failed run raises ``WorkflowFailedException`` (``SagaWorkflowException``
    after a rollback), as in-process, and a ``workflow_observer`` is told each step the
    fleet ran and the status the run came to. ``timeout``: seconds to wait for that, after which
    ``TimeoutError`` says where the run stands.
    """

    def __init__(self, workflow_builder: Any = None, *, timeout: float = 300.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workflow_builder = workflow_builder
        self.timeout = timeout

    async def run_next(self, workflow: Workflow,
                       user_input: dict[str, Any]) -> tuple[Any, str | None]:
        before = workflow.record
        await super().run_next(workflow, user_input)
        workflow.record = await self._at_rest(workflow, before.version)
        if workflow.observer is not None:  # told what the fleet did, as in-process
            history = await workflow.persistence.history(workflow.id)
            await report_history(workflow.observer, before, workflow.record,
                                 [h for h in history if (h.version or 0) > before.version],
                                 workflow.definition.index_of)
        raise_if_failed(workflow)
        return None, None

    async def _at_rest(self, workflow: Workflow, before: int) -> WorkflowRecord:
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            record = await workflow.persistence.load_workflow(workflow.id)
            if record is not None and record.version > before and _at_rest(record):
                return record
            if time.monotonic() >= deadline:
                where = f"{record.status} at step {record.current_step!r}" if record else "gone"
                raise TimeoutError(f"workflow {workflow.id} is still {where} after "
                                   f"{self.timeout:g} s: are workers running "
                                   "(ruvon-workers worker)?")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)


def _at_rest(record: WorkflowRecord) -> bool:
    status = Status(record.status)
    return status.is_terminal or status in (Status.WAITING_HUMAN,
                                            Status.WAITING_CHILD_HUMAN_INPUT)


__all__ = ["CeleryExecutionProvider"]
