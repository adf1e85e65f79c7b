"""The coordinator: the only code that moves a workflow on the fleet.

For a step message ``(workflow_id, step, version)`` it loads the row, runs the step,
and commits state + history + next step in one compare-and-set statement; only then is
the next message published. A message whose version is no longer the row's (a duplicate,
a redelivery, a sweep's re-send that lost the race) changes nothing.

Crash between commit and publish, a worker killed mid-step, a flushed broker: the row
stays ACTIVE with a ``due_at`` lease, and the recovery sweep re-sends the step when the
lease expires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..builder import WorkflowBuilder
from ..definitions import Registry
from ..engine.executor import StepRunner, Transition, arrive, validate_input
from ..engine.records import HistoryEntry, RecordUpdate, Status, StepOutcome, WorkflowRecord
from ..errors import (
    InvalidTransition,
    RuvonError,
    StaleStateError,
    WorkflowNotFound,
)
from ..persistence.base import PersistenceProvider
from .dispatch import Dispatcher
from .settings import FleetSettings

log = logging.getLogger("ruvon.coordinator")

#: Compare-and-set retries for operator actions racing the fleet (cancel, resume).
_CAS_ATTEMPTS = 5

#: ``observer(event, **data)``, for metrics (``ruvon_workers.observability``): "ended"
#: (``record=``) after a commit here gave a workflow a terminal status, "swept" (``sent=``)
#: after each recovery sweep. An observer that raises is logged and ignored.
OBSERVERS: list[Callable[..., None]] = []


def _notify(event: str, **data: Any) -> None:
    for observe in OBSERVERS:
        try:
            observe(event, **data)
        except Exception:
            log.exception("%s observer failed", event)


@dataclass
class StepOutcomeReport:
    """What handling one step message did (for logs, metrics and tests)."""

    applied: bool
    reason: str = ""
    status: str | None = None
    step: str | None = None
    duration_ms: float | None = None
    retry: bool = False


class Coordinator:
    def __init__(self, registry: Registry, persistence: PersistenceProvider,
                 dispatcher: Dispatcher, settings: FleetSettings):
        self.registry = registry
        self.builder = WorkflowBuilder(registry)
        self.persistence = persistence
        self.dispatcher = dispatcher
        self.settings = settings

    # -- helpers ---------------------------------------------------------------------

    def _due_in(self, record_type: str, status: str, step: str | None,
                retry_delay: float | None = None) -> float | None:
        if status != Status.ACTIVE or step is None:
            return None
        if retry_delay is not None:
            return retry_delay
        return self.settings.lease_for(self.registry.get(record_type).step(step))

    def _dispatch(self, record: WorkflowRecord, countdown: float | None = None) -> None:
        if record.status != Status.ACTIVE or record.current_step is None:
            return
        if countdown is not None and countdown > self.settings.max_countdown:
            return  # the sweep sends it when due_at passes
        try:
            self.dispatcher.step(record.workflow_type, record.current_step, record.id,
                                 record.version, countdown=countdown)
        except Exception:
            # Committed but not published: the sweep re-sends it when its lease expires.
            log.exception("publishing %s/%s failed; the recovery sweep will re-send it",
                          record.id, record.current_step)

    async def load(self, workflow_id: str) -> WorkflowRecord:
        record = await self.persistence.load_workflow(workflow_id)
        if record is None:
            raise WorkflowNotFound(workflow_id)
        return record

    # -- producer operations ------------------------------------------------------------

    async def start(self, workflow_type: str, initial_data: dict[str, Any] | None, *,
                    idempotency_key: str | None = None, workflow_id: str | None = None,
                    parent_id: str | None = None) -> tuple[WorkflowRecord, bool]:
        """Validate, store and dispatch a new workflow; ``(record, created)``."""
        record = self.builder.new_record(workflow_type, initial_data,
                                         idempotency_key=idempotency_key,
                                         workflow_id=workflow_id, parent_id=parent_id)
        due = self._due_in(workflow_type, record.status, record.current_step)
        stored, created = await self.persistence.create_workflow(record, due_in=due)
        if created:
            self._dispatch(stored)
        return stored, created

    async def resume(self, workflow_id: str, user_input: dict[str, Any]) -> WorkflowRecord:
        """Hand input to a workflow waiting for it; the step runs on the fleet."""
        for _ in range(_CAS_ATTEMPTS):
            record = await self.load(workflow_id)
            if record.status != Status.WAITING_HUMAN_INPUT or record.current_step is None:
                raise InvalidTransition(workflow_id, record.status, "resume",
                                        "Only a workflow in WAITING_HUMAN_INPUT takes input.")
            defn = self.registry.get(record.workflow_type)
            validate_input(defn, defn.step(record.current_step), user_input)
            runtime = {**record.runtime, "pending_input": user_input}
            runtime.pop("waiting_reason", None)
            update = RecordUpdate.keep(record, status=Status.ACTIVE, runtime=runtime,
                                       due_in=self._due_in(record.workflow_type, Status.ACTIVE,
                                                           record.current_step))
            try:
                version = await self.persistence.apply(
                    workflow_id, record.version, update,
                    [HistoryEntry(record.current_step, StepOutcome.RESUMED)])
            except StaleStateError:
                continue
            update.applied_to(record, version)
            self._dispatch(record)
            return record
        raise StaleStateError(workflow_id, -1)

    async def cancel(self, workflow_id: str, reason: str) -> WorkflowRecord:
        for _ in range(_CAS_ATTEMPTS):
            record = await self.load(workflow_id)
            if Status(record.status).is_terminal:
                raise InvalidTransition(workflow_id, record.status, "cancel")
            update = RecordUpdate.keep(record, status=Status.CANCELLED, error={
                "step": record.current_step, "type": "Cancelled", "message": reason})
            try:
                version = await self.persistence.apply(
                    workflow_id, record.version, update,
                    [HistoryEntry(record.current_step, StepOutcome.CANCELLED,
                                  detail={"reason": reason})])
            except StaleStateError:
                continue
            ended = update.applied_to(record, version)
            _notify("ended", record=ended)
            return ended
        raise StaleStateError(workflow_id, -1)

    async def retry(self, workflow_id: str, from_step: str | None = None) -> WorkflowRecord:
        """Run a failed (or cancelled) workflow again from ``from_step`` or the failed step."""
        record = await self.load(workflow_id)
        status = Status(record.status)
        allowed = {Status.FAILED, Status.FAILED_CHILD_WORKFLOW, Status.CANCELLED}
        if from_step:
            allowed.add(Status.FAILED_ROLLED_BACK)
        if status not in allowed:
            raise InvalidTransition(workflow_id, status, "retry",
                                    "Retry a FAILED, FAILED_CHILD_WORKFLOW or CANCELLED workflow "
                                    "(a FAILED_ROLLED_BACK one only with --from-step).")
        defn = self.registry.get(record.workflow_type)
        step = from_step or (record.error or {}).get("step") or record.current_step
        if not step or not defn.has_step(step):
            raise RuvonError(f"Workflow '{record.workflow_type}' has no step '{step}'. "
                             f"Steps: {', '.join(s.name for s in defn.steps)}")
        new_status, current = arrive(defn, step)
        runtime = {k: v for k, v in record.runtime.items()
                   if k not in ("attempts", "pending_input", "waiting_reason", "compensated")}
        # Steps from the retried one on will run again: they are no longer "completed"
        # (a later saga must compensate each execution once, not the old ones twice).
        completed = list(runtime.get("completed", []))
        if step in completed:
            completed = completed[:completed.index(step)]
        runtime["completed"] = completed
        if new_status == Status.WAITING_HUMAN_INPUT:
            runtime["waiting_for"] = current
        update = RecordUpdate(new_status, current, record.state, runtime, error=None,
                              due_in=self._due_in(record.workflow_type, new_status, current))
        version = await self.persistence.apply(
            workflow_id, record.version, update,
            [HistoryEntry(step, StepOutcome.RETRIED, detail={"from_status": str(status)})])
        update.applied_to(record, version)
        self._dispatch(record)
        return record

    # -- the fleet's side -------------------------------------------------------------

    async def handle_step(self, workflow_id: str, step: str, version: int) -> StepOutcomeReport:
        """Run one step message. Safe to call any number of times for the same message."""
        pinned = getattr(self.persistence, "pinned", None)
        if pinned is None:
            return await self._handle_step(workflow_id, step, version)
        with pinned():
            return await self._handle_step(workflow_id, step, version)

    async def _handle_step(self, workflow_id: str, step: str,
                           version: int) -> StepOutcomeReport:
        record = await self.persistence.load_workflow(workflow_id)
        if record is None:
            return StepOutcomeReport(False, "unknown workflow")
        if (record.version != version or record.current_step != step
                or record.status != Status.ACTIVE):
            return StepOutcomeReport(False, f"stale: workflow is {record.status} at "
                                            f"{record.current_step!r} v{record.version}")
        defn = self.registry.get(record.workflow_type)
        user_input = record.runtime.get("pending_input") or {}
        transition = await StepRunner(defn, record, user_input=user_input, fleet=True).run()
        return await self._commit(record, transition)

    async def fail_step(self, workflow_id: str, step: str, version: int,
                        exc: BaseException) -> StepOutcomeReport:
        """Record a failed attempt of a step that could not report it itself (its process
        was killed at the hard time limit): retry per its policy, or fail the workflow."""
        record = await self.persistence.load_workflow(workflow_id)
        if (record is None or record.version != version or record.current_step != step
                or record.status != Status.ACTIVE):
            return StepOutcomeReport(False, "stale: the step already moved on")
        runner = StepRunner(self.registry.get(record.workflow_type), record, fleet=True)
        return await self._commit(record, await runner.fail(exc, time.perf_counter()))

    async def _commit(self, record: WorkflowRecord, transition: Transition) -> StepOutcomeReport:
        update = transition.update
        update.due_in = self._due_in(record.workflow_type, update.status, update.current_step,
                                     transition.retry_delay)
        try:
            version = await self.persistence.apply(record.id, record.version, update,
                                                   transition.history)
        except StaleStateError:
            # Another delivery of this message committed first: its result stands.
            return StepOutcomeReport(False, "lost the compare-and-set to another delivery",
                                     step=transition.step)
        update.applied_to(record, version)
        if update.terminal:
            _notify("ended", record=record)
        self._dispatch(record, countdown=transition.retry_delay)
        duration = transition.history[0].duration_ms if transition.history else None
        return StepOutcomeReport(True, status=str(update.status), step=transition.step,
                                 duration_ms=duration, retry=transition.retry_delay is not None)

    async def sweep(self, limit: int = 500) -> int:
        """Re-send every step whose lease (or retry delay) expired; return how many."""
        due = await self.persistence.claim_due(lease_seconds=self.settings.lease_seconds,
                                               limit=limit)
        sent = 0
        for item in due:
            if item.workflow_type not in self.registry:
                log.warning("sweep: workflow %s has type %r, unknown to this worker's registry",
                            item.workflow_id, item.workflow_type)
                continue
            try:
                self.dispatcher.step(item.workflow_type, item.step, item.workflow_id,
                                     item.version)
                sent += 1
            except Exception:
                log.exception("sweep: re-sending %s/%s failed", item.workflow_id, item.step)
        _notify("swept", sent=sent)
        if sent:
            log.info("recovery sweep re-sent %d step(s)", sent)
        return sent
