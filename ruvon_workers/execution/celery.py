"""Run steps on the Celery fleet from the in-process API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import Celery

from ..engine.records import Status, WorkflowRecord
from ..fleet.dispatch import Dispatcher
from ..fleet.settings import FleetSettings

if TYPE_CHECKING:
    from ..fleet.coordinator import Coordinator
    from ..workflow import Workflow


class CeleryExecutionProvider:
    """Every step is a task on the fleet; ``next_step`` hands work to it and returns.

    ``next_step`` on an ACTIVE workflow (re)sends its current step (a duplicate is a
    no-op on the fleet); on a workflow waiting for input it resumes it with the input.
    Use ``Workflow.reload()`` (or ``Client.wait``) to see progress.
    """

    def __init__(self, app: Celery | None = None, settings: FleetSettings | None = None):
        if app is None:
            from ..fleet.app import create_app

            app = create_app()
        self.app = app
        self.settings = settings or app.ruvon_settings
        self.dispatcher = Dispatcher(app, app.ruvon_registry, self.settings)

    def initial_due_in(self) -> float | None:
        return self.settings.lease_seconds

    async def on_created(self, record: WorkflowRecord) -> None:
        if record.status == Status.ACTIVE and record.current_step:
            self.dispatcher.step(record.workflow_type, record.current_step, record.id,
                                 record.version)

    def _coordinator(self, workflow: Workflow) -> Coordinator:
        from ..fleet.factory import build_coordinator

        return build_coordinator(workflow.persistence, registry=self.app.ruvon_registry,
                                 dispatcher=self.dispatcher, settings=self.settings)

    async def run_next(self, workflow: Workflow,
                       user_input: dict[str, Any]) -> tuple[Any, str | None]:
        coordinator = self._coordinator(workflow)
        if workflow.record.status == Status.WAITING_HUMAN:
            workflow.record = await coordinator.resume(workflow.id, user_input)
        else:
            await self.on_created(workflow.record)
        return None, None

    async def cancel(self, workflow: Workflow, reason: str) -> None:
        """Cancel the run (and its sub-workflow) as the fleet does; its parent is woken."""
        workflow.record = await self._coordinator(workflow).cancel(workflow.id, reason)
