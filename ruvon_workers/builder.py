"""Create and load workflows from a registry (Ruvon's ``WorkflowBuilder``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from .definitions import Registry, WorkflowDefinition, load_registry
from .engine.keys import child_key, producer_key, spawn_key
from .engine.records import WorkflowRecord
from .engine.routing import arrive
from .engine.runtime import Link, Runtime
from .engine.values import check_input_size
from .errors import InvalidStateError, WorkflowNotFound
from .observers import started
from .utils.imports import IMPORT_CACHE, import_from_string
from .utils.serialization import NUL_REFUSED, nul_path
from .workflow import Workflow

if TYPE_CHECKING:
    from .execution.base import ExecutionProvider
    from .observers import WorkflowObserver
    from .persistence.base import PersistenceProvider


class WorkflowBuilder:
    """Holds the loaded registry; builds new workflows and loads stored ones."""

    #: Dotted path -> resolved object, shared by the whole process.
    _import_cache: ClassVar[dict[str, Any]] = IMPORT_CACHE
    #: What ``create_workflow`` and ``load_workflow`` return (``ruvon.workflow.Workflow``
    #: adds Ruvon's members).
    workflow_class: ClassVar[type[Workflow]] = Workflow

    def __init__(self, registry: Registry):
        self.registry = registry

    @classmethod
    def from_registry(cls, path: str | Path) -> WorkflowBuilder:
        return cls(load_registry(path))

    @classmethod
    def _import_from_string(cls, path: str) -> Any:
        return import_from_string(path)

    def definition(self, workflow_type: str) -> WorkflowDefinition:
        return self.registry.get(workflow_type)

    @property
    def workflow_types(self) -> list[str]:
        return list(self.registry.workflows)

    def new_record(self, workflow_type: str, initial_data: dict[str, Any] | None, *,
                   idempotency_key: str | None = None, parent_id: str | None = None,
                   workflow_id: str | None = None,
                   internal_key: str | None = None) -> WorkflowRecord:
        """Validate ``initial_data`` (its size first, see ``check_input_size``) and build
        the record of a new workflow (not stored). ``idempotency_key`` is a producer's
        (refused in the engine's ``ruvon:`` namespace); ``internal_key`` one the engine
        built (see ``engine.keys``)."""
        key = internal_key if internal_key is not None else producer_key(idempotency_key)
        defn = self.definition(workflow_type)
        if workflow_id is not None:
            try:
                workflow_id = str(uuid.UUID(str(workflow_id)))
            except ValueError:
                raise InvalidStateError(
                    f"workflow_id for '{workflow_type}'",
                    detail=f"{workflow_id!r} is not a UUID (leave it out to get one)") from None
        if initial_data is not None and not isinstance(initial_data, dict):
            raise InvalidStateError(f"Initial data for '{workflow_type}'",
                                    detail=f"expected an object, got {type(initial_data).__name__}")
        check_input_size(initial_data, f"Initial data for '{workflow_type}'")
        try:
            state = defn.state_model.model_validate(initial_data or {})
        except ValidationError as exc:
            raise InvalidStateError.from_validation_error(
                f"Initial data for '{workflow_type}' ({defn.state_model.__name__})", exc) from None
        data = state.model_dump(mode="json")
        path = nul_path(data)
        if path is not None:
            raise InvalidStateError(f"Initial data for '{workflow_type}'",
                                    detail=f"field '{path}' {NUL_REFUSED}")
        status, current = arrive(defn, defn.first_step)
        runtime = Runtime(waiting_for=current if current and status != "ACTIVE" else None,
                          definition=defn.fingerprint or None)
        return WorkflowRecord(
            id=workflow_id or str(uuid.uuid4()),
            workflow_type=workflow_type,
            workflow_version=defn.workflow_version,
            status=status,
            current_step=current,
            state=data,
            runtime=runtime,
            idempotency_key=key,
            parent_id=parent_id,
        )

    def related_record(self, origin: WorkflowRecord, step: str, workflow_type: str | None,
                       initial_data: dict[str, Any] | None, *, child: bool,
                       execution_version: int | None = None) -> WorkflowRecord:
        """The record of a workflow that step ``step`` of ``origin`` starts: a sub-workflow
        (``child``, linked to its parent) or an independent FIRE_AND_FORGET one. Its
        idempotency key is fixed by the step execution, so a re-run of the step finds the
        workflow it already started instead of starting another (``execution_version``:
        the version the step's first attempt ran at, see ``StepRunner``)."""
        version = origin.version if execution_version is None else execution_version
        key = (child_key if child else spawn_key)(origin.id, step, version)
        record = self.new_record(str(workflow_type), initial_data, internal_key=key,
                                 parent_id=origin.id if child else None)
        link: Link = {"id": origin.id, "workflow_type": origin.workflow_type, "step": step}
        if child:
            record.runtime.parent = link
        else:
            record.runtime.spawned_by = link
        return record

    async def insert(self, persistence: PersistenceProvider, record: WorkflowRecord, *,
                     due_in: float | None = None) -> tuple[WorkflowRecord, bool]:
        """Store a new run, and first (once per store) the snapshot of the definition it
        starts on; ``(record, created)``."""
        await self.registry.remember(persistence, self.definition(record.workflow_type))
        stored, created = await persistence.create_workflow(record, due_in=due_in)
        return stored, created

    async def create_workflow(self, workflow_type: str, initial_data: dict[str, Any] | None = None,
                              *, persistence_provider: PersistenceProvider,
                              execution_provider: ExecutionProvider,
                              idempotency_key: str | None = None,
                              parent_id: str | None = None,
                              workflow_observer: WorkflowObserver | None = None,
                              metadata: dict[str, Any] | None = None,
                              labels: dict[str, Any] | None = None) -> Workflow:
        """Validate, store and (on the fleet) dispatch a new workflow.

        With an ``idempotency_key`` already used, the existing workflow is returned.
        ``metadata`` and ``labels`` (owner, organisation, region, priority) are kept with
        the run as given.
        """
        record = self.new_record(workflow_type, initial_data, idempotency_key=idempotency_key,
                                 parent_id=parent_id)
        record.runtime.metadata = dict(metadata or {})
        record.runtime.labels = {k: v for k, v in (labels or {}).items() if v is not None}
        due_in = execution_provider.initial_due_in() if record.status == "ACTIVE" else None
        stored, created = await self.insert(persistence_provider, record, due_in=due_in)
        if created:
            await execution_provider.on_created(stored)
            if workflow_observer is not None:
                await started(workflow_observer, stored)
        return self.workflow_class(
            await self.registry.for_record(persistence_provider, stored), stored,
            persistence_provider, execution_provider, builder=self, observer=workflow_observer)

    async def load_workflow(self, workflow_id: str, *, persistence_provider: PersistenceProvider,
                            execution_provider: ExecutionProvider,
                            workflow_observer: WorkflowObserver | None = None) -> Workflow:
        record = await persistence_provider.load_workflow(workflow_id)
        if record is None:
            raise WorkflowNotFound(workflow_id)
        # A run finishes on the definition it started with, if its file changed since.
        return self.workflow_class(
            await self.registry.for_record(persistence_provider, record), record,
            persistence_provider, execution_provider, builder=self, observer=workflow_observer)
