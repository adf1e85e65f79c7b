"""Ruvon's ``WorkflowEngine``: the older entry point that owns a builder and its
providers, starts workflows and loads them again."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .builder import WorkflowBuilder
from .workflow import Workflow


class WorkflowEngine:
    def __init__(self, persistence: Any, executor: Any, observer: Any,
                 workflow_registry: Mapping[str, Any] | str | Path | None,
                 expression_evaluator_cls: Any = None, template_engine_cls: Any = None,
                 config_dir: str | Path | None = None):
        self.persistence = persistence
        self.executor = executor
        self.observer = observer
        self.expression_evaluator_cls = expression_evaluator_cls
        self.template_engine_cls = template_engine_cls
        self.workflow_builder = WorkflowBuilder(workflow_registry, expression_evaluator_cls,
                                                template_engine_cls, config_dir=config_dir)

    async def initialize(self) -> None:
        """Open the store and hand the engine to the executor, as Ruvon does."""
        await self.persistence.initialize()
        initialize = getattr(self.executor, "initialize", None)
        if initialize is not None:
            started = initialize(self)
            if hasattr(started, "__await__"):
                await started

    async def get_workflow(self, workflow_id: str) -> Workflow:
        """The run as stored now."""
        workflow = await self.workflow_builder.load_workflow(
            workflow_id, persistence_provider=self.persistence,
            execution_provider=self.executor, workflow_observer=self.observer)
        assert isinstance(workflow, Workflow)
        return workflow

    async def report_child_status(self, child_id: str, parent_id: str,
                                  child_new_status: str,
                                  child_current_step_name: str | None = None,
                                  child_result: dict[str, Any] | None = None) -> None:
        """A sub-workflow changed: its parent learns it from the stored child, as the
        executors here tell it themselves. Ended, the parent goes on (its results filed
        under the child's id) or fails; waiting for input, the parent is
        WAITING_CHILD_HUMAN_INPUT. A parent not waiting for that child is left alone."""
        from ruvon_workers.engine.machine import ChildChanged, decide
        from ruvon_workers.engine.records import WAITS_FOR_CHILD
        from ruvon_workers.errors import StaleStateError
        from ruvon_workers.execution.operations import CAS_ATTEMPTS

        for _ in range(CAS_ATTEMPTS):
            parent = await self.get_workflow(parent_id)
            child = await self.persistence.load_workflow(child_id)
            if (child is None or parent.record.status not in WAITS_FOR_CHILD
                    or (parent.record.runtime.child or {}).get("id") != child_id):
                return
            transition = await decide(parent.definition, parent.record, ChildChanged(child))
            if transition is None:
                return
            try:
                await self.persistence.apply(parent.id, parent.record.version,
                                             transition.update, transition.history)
                return
            except StaleStateError:
                continue

    async def start_workflow(self, workflow_type: str,
                             initial_data: dict[str, Any] | None = None,
                             owner_id: str | None = None, org_id: str | None = None,
                             data_region: str | None = None, priority: int | None = None,
                             idempotency_key: str | None = None,
                             metadata: dict[str, Any] | None = None) -> Workflow:
        """Create and store a run of ``workflow_type``."""
        return await self.workflow_builder.create_workflow(
            workflow_type, persistence_provider=self.persistence,
            execution_provider=self.executor, workflow_observer=self.observer,
            initial_data=initial_data, owner_id=owner_id, org_id=org_id,
            data_region=data_region, priority=priority, idempotency_key=idempotency_key,
            metadata=metadata)


__all__ = ["WorkflowEngine"]
