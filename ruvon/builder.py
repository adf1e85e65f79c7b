"""Ruvon's ``WorkflowBuilder``: its constructor and ``create_workflow`` arguments."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ruvon_workers.builder import WorkflowBuilder as _Builder
from ruvon_workers.definitions import load_registry, load_registry_mapping
from ruvon_workers.execution.sync import SyncExecutionProvider
from ruvon_workers.persistence.memory import MemoryPersistenceProvider

from .workflow import Workflow

_DEFAULT_REGISTRY = "workflow_registry.yaml"


class WorkflowBuilder(_Builder):
    """Build and load workflows from a registry.

    ``workflow_registry`` is Ruvon's ``{type: entry}`` dict (each entry names its
    ``config_file``, relative to ``config_dir``, and its ``initial_state_model_path``) or
    the path of a registry file; without it, ``config_dir``'s
    ``$WORKFLOW_REGISTRY_FILE`` (``workflow_registry.yaml``) is read. Conditions and
    templates are evaluated by the engine's restricted evaluator and sandbox whatever
    evaluator or template classes are passed.
    """

    workflow_class: ClassVar[type[Workflow]] = Workflow

    def __init__(self, workflow_registry: Mapping[str, Any] | str | Path | None = None,
                 expression_evaluator_cls: Any = None, template_engine_cls: Any = None,
                 config_dir: str | Path | None = None, **_: Any):
        base = Path(config_dir) if config_dir is not None else Path(os.getcwd())
        if isinstance(workflow_registry, Mapping):
            registry = load_registry_mapping(workflow_registry, base)
        else:
            path = Path(workflow_registry) if workflow_registry is not None else \
                base / os.getenv("WORKFLOW_REGISTRY_FILE", _DEFAULT_REGISTRY)
            registry = load_registry(path)
        super().__init__(registry)
        self.config_dir = str(base)
        self.expression_evaluator_cls = expression_evaluator_cls
        self.template_engine_cls = template_engine_cls

    async def create_workflow(self, workflow_type: str, *args: Any,
                              persistence_provider: Any = None, execution_provider: Any = None,
                              workflow_builder: Any = None, expression_evaluator_cls: Any = None,
                              template_engine_cls: Any = None, workflow_observer: Any = None,
                              initial_data: dict[str, Any] | None = None,
                              owner_id: str | None = None, org_id: str | None = None,
                              data_region: str | None = None, priority: int | None = None,
                              idempotency_key: str | None = None,
                              metadata: dict[str, Any] | None = None,
                              **_: Any) -> Workflow:
        """Create (and store) a run of ``workflow_type``; Ruvon's positional order is
        ``(workflow_type, persistence_provider, execution_provider, ...)``. Without
        providers the run lives in memory and executes in-process."""
        positional = ("persistence_provider", "execution_provider", "workflow_builder",
                      "expression_evaluator_cls", "template_engine_cls",
                      "workflow_observer", "initial_data")
        given = dict(zip(positional, args, strict=False))
        persistence = given.get("persistence_provider", persistence_provider)
        execution = given.get("execution_provider", execution_provider)
        observer = given.get("workflow_observer", workflow_observer)
        data = given.get("initial_data", initial_data)
        workflow = await super().create_workflow(
            workflow_type, data,
            persistence_provider=persistence or MemoryPersistenceProvider(),
            execution_provider=execution or SyncExecutionProvider(),
            idempotency_key=idempotency_key, workflow_observer=observer,
            metadata=metadata, labels={"owner_id": owner_id, "org_id": org_id,
                                       "data_region": data_region, "priority": priority})
        assert isinstance(workflow, Workflow)
        return workflow

    def get_workflow_config(self, workflow_type: str) -> dict[str, Any]:
        """The type's definition as a dict (``workflow_type``, ``workflow_version``,
        ``initial_state_model_path``, ``steps``)."""
        defn = self.definition(workflow_type)
        return {"workflow_type": defn.workflow_type, "workflow_version": defn.workflow_version,
                "initial_state_model_path": defn.state_model_path,
                "saga_mode": defn.saga_enabled,
                "steps": [s.model_dump(exclude_unset=True) for s in defn.steps]}

    def get_state_model_class(self, workflow_type: str) -> Any:
        return self.definition(workflow_type).state_model


__all__ = ["WorkflowBuilder"]
