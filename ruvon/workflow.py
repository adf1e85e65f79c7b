"""Ruvon's ``Workflow``: the engine's workflow with the members Ruvon programs use."""

from __future__ import annotations

from typing import Any

from ruvon_workers.definitions.models import StepType
from ruvon_workers.directives import WorkflowPauseDirective
from ruvon_workers.engine.records import WAITS_FOR_CHILD, Status
from ruvon_workers.engine.runtime import PAUSED, PAUSED_IN_PLACE
from ruvon_workers.workflow import Workflow as _Workflow

COMPLETED_RESULT = {"status": "Workflow completed"}


class Workflow(_Workflow):
    """One run, as Ruvon programs see it: ``current_step`` is the index of the current
    step (``current_step_name`` its name), ``workflow_steps`` the steps in order.

    A HUMAN_IN_LOOP step waits for input as soon as the run arrives at it (the stored
    status is WAITING_HUMAN, so operators and the fleet see it). As on Ruvon, this object
    shows ACTIVE there until ``next_step`` is called without input, which raises the
    pause; a step that raises ``WorkflowPauseDirective`` raises it from ``next_step``.
    """

    #: Whether ``next_step`` has asked for the input of the HUMAN_IN_LOOP step the run
    #: waits at (raised the pause).
    _asked: bool = False

    @property
    def status(self) -> str:
        if self._quietly_waiting():
            return Status.ACTIVE
        return self.record.status

    def _quietly_waiting(self) -> bool:
        """Arrived at a HUMAN_IN_LOOP step that has not paused yet: ACTIVE on Ruvon."""
        record = self.record
        if (record.status != Status.WAITING_HUMAN or record.runtime.waiting_reason
                or self._asked or record.current_step is None):
            return False
        return self.definition.step(record.current_step).type is StepType.HUMAN_IN_LOOP

    @property
    def current_step(self) -> int:
        """The index of the current step; the number of steps once the run completed."""
        name = self.current_step_name
        if name is None:
            return len(self.definition.steps) if self.status == Status.COMPLETED else 0
        index = self.definition.index_of(name)
        return index if index >= 0 else len(self.definition.steps)

    @property
    def current_step_index(self) -> int:
        return self.current_step

    @property
    def workflow_steps(self) -> list[Any]:
        return list(self.definition.steps)

    @property
    def steps_config(self) -> list[dict[str, Any]]:
        return [step.model_dump(exclude_unset=True) for step in self.definition.steps]

    @property
    def workflow_version(self) -> str:
        return self.record.workflow_version

    @property
    def definition_snapshot(self) -> dict[str, Any]:
        """The workflow file as this run started on it (its steps, routes and settings):
        the run finishes on it even if the file changes."""
        snapshot = self.definition.snapshot or {}
        return dict(snapshot.get("workflow") or {})

    @property
    def state_model_path(self) -> str:
        return self.definition.state_model_path

    @property
    def saga_mode(self) -> bool:
        return bool(self.definition.saga_enabled or self.record.runtime.saga_mode)

    @property
    def completed_steps_stack(self) -> list[dict[str, Any]]:
        """The completed steps a saga would compensate (those with a
        ``compensate_function``), oldest first."""
        defn = self.definition
        return [{"step_index": defn.index_of(name), "step_name": name}
                for name in self.record.runtime.completed
                if defn.has_step(name) and defn.step(name).compensate_function]

    @property
    def parent_execution_id(self) -> str | None:
        return self.record.parent_id

    @property
    def blocked_on_child_id(self) -> str | None:
        child = self.record.runtime.child
        return child.get("id") if child and self.record.status in WAITS_FOR_CHILD else None

    @property
    def idempotency_key(self) -> str | None:
        return self.record.idempotency_key

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata the run was created with."""
        return self.record.runtime.metadata

    @property
    def owner_id(self) -> str | None:
        return self.record.runtime.labels.get("owner_id")

    @property
    def org_id(self) -> str | None:
        return self.record.runtime.labels.get("org_id")

    @property
    def data_region(self) -> str | None:
        return self.record.runtime.labels.get("data_region")

    @property
    def priority(self) -> int:
        return int(self.record.runtime.labels.get("priority") or 5)

    async def next_step(self, user_input: dict[str, Any] | None = None,
                        _previous_step_result: Any = None) -> tuple[Any, str | None]:
        """Run the current step and answer as Ruvon does: ``(the step's result, the next
        step's name)``; ``({"status": "Workflow completed"}, None)`` once the run is
        complete; ``({"message": "Jumped to step X"}, "X")`` after a jump; the child's ids
        after starting a sub-workflow."""
        if self.status == Status.COMPLETED:
            return dict(COMPLETED_RESULT), None
        if self._quietly_waiting() and not user_input:
            self._asked = True
            raise WorkflowPauseDirective({})
        self._asked = False
        result, jumped_to = await super().next_step(user_input)
        if self.status == Status.COMPLETED:
            return dict(COMPLETED_RESULT), None
        if self.record.status == Status.WAITING_HUMAN:
            self._pause_if_asked(result, jumped_to)
        if jumped_to is not None:
            return {"message": f"Jumped to step {jumped_to}"}, jumped_to
        child = self.record.runtime.child
        if self.record.status in WAITS_FOR_CHILD and child:
            return {"message": f"Sub-workflow {child.get('workflow_type')} started",
                    "child_workflow_id": child.get("id"),
                    "parent_workflow_id": self.id}, None
        return (result if result is not None else {}), self.current_step_name

    def _pause_if_asked(self, result: Any, jumped_to: str | None) -> None:
        """Raise the pause where Ruvon's ``next_step`` would: the step paused itself, or
        a chained step reached a HUMAN_IN_LOOP step (which pauses when run without input)."""
        if self.record.runtime.waiting_reason in (PAUSED, PAUSED_IN_PLACE):
            self._asked = True
            raise WorkflowPauseDirective(result if isinstance(result, dict) else {})
        ran = self.last_step
        if (self._quietly_waiting() and ran and not jumped_to and ran != self.current_step_name
                and self.definition.step(ran).automate_next is True):
            self._asked = True
            raise WorkflowPauseDirective({})

    async def enable_saga_mode(self) -> None:
        """From now on a failure runs the compensations of the completed steps (newest
        first) and ends the run FAILED_ROLLED_BACK."""
        await self.set_saga_mode(True)

    async def jump_to_step(self, step_name: str) -> None:
        """Move the run to ``step_name`` (the Ruvon docs' method): the run must be between
        steps, ACTIVE or waiting for input; the next ``next_step`` runs that step."""
        from ruvon_workers.engine.machine import JumpTo
        from ruvon_workers.execution.operations import apply_event

        async def definition(record: Any) -> Any:
            return self.definition

        self.record, _ = await apply_event(self.persistence, definition, self.id,
                                           JumpTo(step_name))
        self._asked = False

    async def save(self) -> None:
        """Every transition is stored as it commits: nothing is left to save."""

    def to_dict(self) -> dict[str, Any]:
        record = self.record
        return {
            "id": record.id, "workflow_type": record.workflow_type,
            "workflow_version": record.workflow_version,
            "definition_snapshot": self.definition_snapshot,
            "current_step": record.current_step, "status": str(record.status),
            "state": record.state, "steps_config": self.steps_config,
            "state_model_path": self.state_model_path, "saga_mode": self.saga_mode,
            "completed_steps_stack": self.completed_steps_stack,
            "parent_execution_id": record.parent_id,
            "blocked_on_child_id": self.blocked_on_child_id,
            "idempotency_key": record.idempotency_key, "metadata": self.metadata,
            "owner_id": self.owner_id, "org_id": self.org_id,
            "data_region": self.data_region, "priority": self.priority,
        }


__all__ = ["Workflow"]
