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
from typing import Any

from ..builder import WorkflowBuilder
from ..definitions import Registry
from ..engine.executor import StepRunner, Transition, arrive, error_info, validate_input
from ..engine.records import HistoryEntry, RecordUpdate, Status, StepOutcome, WorkflowRecord
from ..errors import (
    InvalidTransition,
    RuvonError,
    StaleStateError,
    StepFailed,
    UnstorableValue,
    WorkerLost,
    WorkflowNotFound,
)
from ..execution.effects import prepare
from ..persistence.base import PersistenceProvider
from ..scheduling import fire_due
from .dispatch import Dispatcher
from .fanout import FanOut, StepOutcomeReport
from .settings import FleetSettings

log = logging.getLogger("ruvon.coordinator")

_FAILED = {Status.FAILED, Status.FAILED_ROLLED_BACK, Status.FAILED_CHILD_WORKFLOW}

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


class Coordinator:
    def __init__(self, registry: Registry, persistence: PersistenceProvider,
                 dispatcher: Dispatcher, settings: FleetSettings):
        self.registry = registry
        self.builder = WorkflowBuilder(registry)
        self.persistence = persistence
        self.dispatcher = dispatcher
        self.settings = settings
        self.fanout = FanOut(self)

    # -- helpers ---------------------------------------------------------------------

    def _due_in(self, record_type: str, status: str, step: str | None,
                retry_delay: float | None = None,
                runtime: dict[str, Any] | None = None) -> float | None:
        """Seconds until the sweep (re)sends this workflow's step, or ``None``."""
        if step is None:
            return None
        if status == Status.PENDING_SUB_WORKFLOW:
            return self.settings.lease_seconds  # wakes the parent if a child's word is lost
        if status == Status.PENDING_ASYNC:
            deadline = ((runtime or {}).get("parallel") or {}).get("deadline")
            if deadline is not None:
                return max(min(deadline - time.time() + 0.5, self.settings.lease_seconds), 0)
            return self.settings.lease_seconds
        if status != Status.ACTIVE:
            return None
        lease = self.settings.lease_for(self.registry.get(record_type).step(step))
        if retry_delay is None:
            return lease
        if retry_delay > self.settings.max_countdown:
            return retry_delay  # not published: the sweep sends it when the delay is over
        # Published with a countdown: the lease covers the wait and the run, so the sweep
        # does not send a second copy while the first one is due or running.
        return retry_delay + lease

    def _record_due_in(self, record: WorkflowRecord) -> float | None:
        return self._due_in(record.workflow_type, record.status, record.current_step,
                            runtime=record.runtime)

    def _send(self, workflow_type: str, step: str, workflow_id: str, version: int,
              countdown: float | None = None, branch: int | None = None) -> None:
        try:
            self.dispatcher.step(workflow_type, step, workflow_id, version, countdown=countdown,
                                 branch=branch)
        except Exception:
            # Committed but not published: the sweep re-sends it when its lease expires.
            log.exception("publishing %s/%s%s failed; the recovery sweep will re-send it",
                          workflow_id, step, "" if branch is None else f"[{branch}]")

    def _dispatch(self, record: WorkflowRecord, countdown: float | None = None) -> None:
        if record.status != Status.ACTIVE or record.current_step is None:
            return
        if countdown is not None and countdown > self.settings.max_countdown:
            return  # the sweep sends it when due_at passes
        self._send(record.workflow_type, record.current_step, record.id, record.version,
                   countdown=countdown)

    def _wake_parent(self, record: WorkflowRecord) -> None:
        """Tell a sub-workflow's parent that it ended or waits for input."""
        parent = record.runtime.get("parent")
        if not parent or not (Status(record.status).is_terminal
                              or record.status == Status.WAITING_HUMAN_INPUT):
            return
        if parent.get("workflow_type") in self.registry:
            self._send(parent["workflow_type"], parent["step"], parent["id"], -1)

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
            self._wake_parent(ended)
            await self._cancel_child(ended, reason)
            return ended
        raise StaleStateError(workflow_id, -1)

    async def _cancel_child(self, record: WorkflowRecord, reason: str) -> None:
        """A cancelled parent cancels the sub-workflow it waits for."""
        child = record.runtime.get("child") or {}
        if record.current_step is None or not child.get("id"):
            return
        try:
            await self.cancel(child["id"], f"parent {record.id} cancelled: {reason}")
        except (InvalidTransition, WorkflowNotFound):
            pass  # it had ended already

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
        dropped = {"attempts", "pending_input", "waiting_reason", "compensated", "child",
                   "parallel", "execution", "lost", "compensate"}
        if from_step:
            dropped.add("loop")  # from an explicit step, a LOOP starts over
        runtime = {k: v for k, v in record.runtime.items() if k not in dropped}
        queue = (runtime.get("inserted") or {}).get("steps", [])
        if step in queue:  # injected steps still to run: from the retried one on
            runtime["inserted"] = {**runtime["inserted"], "steps": queue[queue.index(step):]}
        else:
            runtime.pop("inserted", None)
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

    async def handle_step(self, workflow_id: str, step: str, version: int,
                          branch: int | None = None) -> StepOutcomeReport:
        """Run one step message. Safe to call any number of times for the same message."""
        pinned = getattr(self.persistence, "pinned", None)
        if pinned is None:
            return await self._handle_step(workflow_id, step, version, branch)
        with pinned():
            return await self._handle_step(workflow_id, step, version, branch)

    async def _handle_step(self, workflow_id: str, step: str, version: int,
                           branch: int | None) -> StepOutcomeReport:
        if branch is not None:
            return await self.fanout.run(workflow_id, step, version, branch)
        record = await self.persistence.load_workflow(workflow_id)
        if record is None:
            return StepOutcomeReport(False, "unknown workflow")
        if record.current_step != step:
            return self._stale(record)
        if record.status == Status.PENDING_SUB_WORKFLOW:
            # A wake-up from the child (or the sweep): any version will do, the child's
            # row says what happened.
            return await self._after_child(record)
        if record.version != version:
            return self._stale(record)
        if record.status == Status.PENDING_ASYNC:
            return await self.fanout.join(record)
        if record.status != Status.ACTIVE:
            return self._stale(record)
        defn = self.registry.get(record.workflow_type)
        user_input = record.runtime.get("pending_input") or {}
        runner = StepRunner(defn, record, user_input=user_input, fleet=True)
        handed = record.runtime.get("compensate")
        if handed and handed.get("step") == step:
            # A failure the worker's main process recorded: run its compensations here.
            return await self._commit(record, await runner.fail_recorded(handed["error"]),
                                      runner)
        return await self._commit(record, await runner.run(), runner)

    @staticmethod
    def _stale(record: WorkflowRecord) -> StepOutcomeReport:
        return StepOutcomeReport(False, f"stale: workflow is {record.status} at "
                                        f"{record.current_step!r} v{record.version}")

    async def fail_step(self, workflow_id: str, step: str, version: int,
                        exc: BaseException, branch: int | None = None) -> StepOutcomeReport:
        """Record a failed attempt of a step that could not report it itself (its process
        was killed at the hard time limit): retry per its policy, or fail the workflow."""
        record = await self.persistence.load_workflow(workflow_id)
        if record is None or record.version != version or record.current_step != step:
            return StepOutcomeReport(False, "stale: the step already moved on")
        runner = StepRunner(self.registry.get(record.workflow_type), record, fleet=True)
        if branch is not None and record.status == Status.PENDING_ASYNC:
            return await self.fanout.failed(record, runner, branch, exc, time.perf_counter(),
                                            join_here=False)
        if record.status != Status.ACTIVE:
            return StepOutcomeReport(False, "stale: the step already moved on")
        return await self._fail_outside_pool(record, runner, exc)

    async def _fail_outside_pool(self, record: WorkflowRecord, runner: StepRunner,
                                 exc: BaseException) -> StepOutcomeReport:
        """A failed attempt recorded from the worker's main process (a hard time limit, a
        lost pool process). No user code runs there (a compensation that hangs would stall
        the worker), so a failure that compensates is handed to a pool process: the step's
        message again, the error kept in ``runtime["compensate"]``."""
        step = runner.step.name
        handed = record.runtime.get("compensate")
        started = time.perf_counter()
        if handed and handed.get("step") == step:
            # The pool process running the compensations was killed as well: fail without.
            return await self._commit(record, runner._fail_now(exc, started, error={
                **handed["error"], "compensated": [],
                "compensation_failures": [error_info(step, exc)]}))
        transition = await runner.fail(exc, started, compensate=False)
        if transition.update.status != Status.FAILED or not runner.compensates(exc):
            return await self._commit(record, transition, runner)
        runtime = {**record.runtime, "compensate": {"step": step,
                                                    "error": transition.update.error}}
        update = RecordUpdate.keep(record, runtime=runtime,
                                   due_in=self._due_in(record.workflow_type, Status.ACTIVE, step))
        try:
            version = await self.persistence.apply(record.id, record.version, update, [])
        except StaleStateError:
            return StepOutcomeReport(False, "stale: the step already moved on")
        update.applied_to(record, version)
        self._dispatch(record)
        return StepOutcomeReport(True, status=str(record.status), step=step)

    async def worker_lost(self, workflow_id: str, step: str, version: int,
                          branch: int | None = None) -> bool:
        """The pool process running this step (or branch) died. Send it again, up to
        ``max_worker_lost`` times; the next loss is a failed attempt (retry policy, then
        FAILED), so a step that kills its process every time cannot loop forever.
        Returns whether the loss is accounted for (the message is then replaced)."""
        record = await self.persistence.load_workflow(workflow_id)
        if record is None or record.version != version or record.current_step != step:
            return True  # already moved on: the lost delivery was a duplicate
        runner = StepRunner(self.registry.get(record.workflow_type), record, fleet=True)
        if branch is not None and record.status == Status.PENDING_ASYNC:
            await self.fanout.lost(record, runner, branch)
            return True
        if record.status != Status.ACTIVE:
            return True
        lost = int((record.runtime.get("lost") or {}).get(step, 0)) + 1
        exc = WorkerLost(f"the worker process running step '{step}' died ({lost} time(s); "
                         "killed for memory? a crash in native code?)")
        if lost > self.settings.max_worker_lost:
            await self._fail_outside_pool(record, runner, exc)
            return True
        runtime = {**record.runtime, "lost": {**(record.runtime.get("lost") or {}), step: lost},
                   # the re-sent step keeps its execution's idempotency key
                   "execution": {"step": step, "version": runner.execution_version}}
        update = RecordUpdate.keep(record, runtime=runtime,
                                   due_in=self._due_in(record.workflow_type, Status.ACTIVE, step))
        try:
            new_version = await self.persistence.apply(
                record.id, record.version, update,
                [HistoryEntry(step, StepOutcome.RETRYING, runner.attempt,
                              error=error_info(step, exc), detail={"worker_lost": lost})])
        except StaleStateError:
            return True
        update.applied_to(record, new_version)
        log.warning("step %s of %s lost its worker process (%d of %d allowed); sending it "
                    "again", step, record.id, lost, self.settings.max_worker_lost)
        self._dispatch(record)
        return True

    # -- sub-workflows ----------------------------------------------------------------

    async def _after_child(self, record: WorkflowRecord) -> StepOutcomeReport:
        known = record.runtime.get("child") or {}
        child = await self.persistence.load_workflow(known["id"]) if known.get("id") else None
        if child is None:
            return StepOutcomeReport(False, "sub-workflow not found")
        runner = StepRunner(self.registry.get(record.workflow_type), record, fleet=True)
        if Status(child.status).is_terminal:
            return await self._commit(record, await runner.after_child(child), runner)
        seen = {"status": child.status, "current_step": child.current_step}
        if {k: known.get(k) for k in seen} == seen:
            return StepOutcomeReport(False, f"sub-workflow is {child.status}")
        # Show the child's progress (e.g. waiting for input) on the parent.
        update = RecordUpdate.keep(record, runtime={**record.runtime,
                                                    "child": {**known, **seen}},
                                   due_in=self._record_due_in(record))
        try:
            await self.persistence.apply(record.id, record.version, update, [])
        except StaleStateError:
            return StepOutcomeReport(False, "parent moved on meanwhile")
        return StepOutcomeReport(True, status=record.status, step=record.current_step)

    # -- commit -------------------------------------------------------------------------

    async def _commit(self, record: WorkflowRecord, transition: Transition,
                      runner: StepRunner | None = None) -> StepOutcomeReport:
        started: list[WorkflowRecord] = []
        if runner is not None:
            transition, started = await prepare(self.builder, self.persistence, runner,
                                                transition, self._record_due_in)
        update = transition.update
        update.due_in = self._due_in(record.workflow_type, update.status, update.current_step,
                                     transition.retry_delay, update.runtime)
        if transition.fanout:
            lease = self.settings.lease_for(self.registry.get(record.workflow_type)
                                            .step(transition.step))
            await self.persistence.create_fanout(record.id, record.version + 1, transition.step,
                                                 transition.fanout, lease)
        try:
            version = await self.persistence.apply(record.id, record.version, update,
                                                   transition.history)
        except StaleStateError:
            # Another delivery of this message committed first: its result stands.
            return StepOutcomeReport(False, "lost the compare-and-set to another delivery",
                                     step=transition.step)
        except UnstorableValue as exc:
            if runner is None or update.status in _FAILED:
                raise
            # The database refuses what the step produced, and would refuse it on every
            # re-send: fail the step (its saga runs) instead of re-running it forever.
            log.error("step %s of %s produced a value PostgreSQL refuses: %s",
                      transition.step, record.id, exc)
            refused = StepFailed(transition.step, f"its result cannot be stored: {exc}")
            return await self._commit(record, await runner.fail(refused, time.perf_counter()))
        update.applied_to(record, version)
        if update.terminal:
            _notify("ended", record=record)
        for other in started:
            self._dispatch(other)
            # A re-run of the step found its sub-workflow already over (or waiting): the
            # child's own wake-up came before this commit, so wake the parent now.
            self._wake_parent(other)
        for branch in transition.fanout or ():
            self._send(record.workflow_type, transition.step, record.id, version,
                       branch=branch["idx"])
        self._wake_parent(record)
        self._dispatch(record, countdown=transition.retry_delay)
        duration = transition.history[0].duration_ms if transition.history else None
        return StepOutcomeReport(True, status=str(update.status), step=transition.step,
                                 duration_ms=duration, retry=transition.retry_delay is not None)

    async def fire_schedules(self) -> int:
        """Start the workflows of schedules whose tick has come (see ``scheduling``)."""
        async def start(workflow_type: str, data: dict[str, Any], key: str) -> str:
            record, _ = await self.start(workflow_type, data, idempotency_key=key)
            return record.id

        return await fire_due(self.persistence, start,
                              workflow_types=list(self.registry.workflows))

    async def sweep(self, limit: int = 500) -> int:
        """Re-send every step whose lease (or retry delay) expired; return how many."""
        # Only types this worker can run: a row it would skip must stay due for a worker
        # that has the type, not wait another lease (fleets split by registry).
        due = await self.persistence.claim_due(lease_seconds=self.settings.lease_seconds,
                                               limit=limit,
                                               workflow_types=list(self.registry.workflows))
        sent = 0
        for item in due:
            defn = self.registry.get(item.workflow_type)
            lease = self.settings.lease_for(defn.step(item.step)) \
                if defn.has_step(item.step) else 0.0
            if lease > self.settings.lease_seconds:
                # The claim leased it for the sweep's period; this step may run longer.
                await self.persistence.extend_due(item, lease)
            try:
                self.dispatcher.step(item.workflow_type, item.step, item.workflow_id,
                                     item.version, branch=item.branch)
                sent += 1
            except Exception:
                log.exception("sweep: re-sending %s/%s failed", item.workflow_id, item.step)
        _notify("swept", sent=sent)
        if sent:
            log.info("recovery sweep re-sent %d step(s)", sent)
        return sent
