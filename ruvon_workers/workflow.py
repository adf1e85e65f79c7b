"""A workflow instance as the in-process API sees it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .definitions.models import WorkflowDefinition
from .engine.records import HistoryEntry, Status, WorkflowRecord
from .errors import InvalidTransition

if TYPE_CHECKING:
    from .builder import WorkflowBuilder
    from .execution.base import ExecutionProvider
    from .observers import WorkflowObserver
    from .persistence.base import PersistenceProvider


class Workflow:
    """One run of a workflow type; its state is loaded from and saved to a store."""

    def __init__(self, definition: WorkflowDefinition, record: WorkflowRecord,
                 persistence: PersistenceProvider, execution: ExecutionProvider, *,
                 builder: WorkflowBuilder | None = None,
                 observer: WorkflowObserver | None = None):
        self.definition = definition
        self.builder = builder
        #: Told what each step did, after it committed (in-process).
        self.observer = observer
        self.record = record
        self.persistence = persistence
        self.execution = execution
        self._state: BaseModel | None = None
        self._state_version = -1
        #: The step the latest ``next_step`` call ran last (in-process).
        self.last_step: str | None = None

    def __repr__(self) -> str:
        return (f"<Workflow {self.workflow_type} {self.id} {self.status} "
                f"at {self.current_step_name!r}>")

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def workflow_type(self) -> str:
        return self.record.workflow_type

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def current_step_name(self) -> str | None:
        return self.record.current_step

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def error(self) -> dict[str, Any] | None:
        return self.record.error

    @property
    def state(self) -> BaseModel:
        """The state as an instance of the workflow's model (a fresh copy per version)."""
        if self._state is None or self._state_version != self.record.version:
            self._state = self.definition.state_model.model_validate(self.record.state)
            self._state_version = self.record.version
        return self._state

    async def reload(self) -> Workflow:
        record = await self.persistence.load_workflow(self.id)
        if record is not None:
            self.record = record
        return self

    async def next_step(self, user_input: dict[str, Any] | None = None) -> tuple[Any, str | None]:
        """Run the current step (Ruvon's meaning); return ``(result, jumped_to)``."""
        status = Status(self.record.status)
        if status.is_terminal:
            raise InvalidTransition(self.id, status, "run the next step of")
        return await self.execution.run_next(self, user_input or {})

    async def history(self) -> list[HistoryEntry]:
        return await self.persistence.history(self.id)

    async def cancel(self, reason: str = "cancelled") -> None:
        """Stop the workflow for good (status CANCELLED); its state is kept, and the
        sub-workflow it waits for is cancelled too."""
        status = Status(self.record.status)
        if status.is_terminal:
            raise InvalidTransition(self.id, status, "cancel")
        await self.execution.cancel(self, reason)

    async def set_saga_mode(self, on: bool = True) -> None:
        """Make a failure of this run compensate its completed steps (newest first) and
        end FAILED_ROLLED_BACK, as ``saga_enabled`` does for every run of the type."""
        from .engine.machine import SetSagaMode
        from .execution.operations import apply_event

        async def definition(record: WorkflowRecord) -> WorkflowDefinition:
            return self.definition

        self.record, _ = await apply_event(self.persistence, definition, self.id,
                                           SetSagaMode(on))
