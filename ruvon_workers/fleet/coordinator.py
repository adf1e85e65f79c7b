"""The coordinator: the only code that moves a workflow on the fleet.

For each message it loads the row, asks the engine what the message does
(:func:`ruvon_workers.engine.machine.decide`), commits that with one compare-and-set
statement (state + history + next step), and only then publishes what comes next. A
message whose version is no longer the row's (a duplicate, a redelivery, a sweep's
re-send that lost the race) changes nothing.

Crash between commit and publish, a worker killed mid-step, a flushed broker: the row
stays due with a lease (``leases``), and the recovery sweep (``sweep``) re-sends the step
when the lease expires.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from ..builder import WorkflowBuilder
from ..definitions import Registry, WorkflowDefinition
from ..engine import machine
from ..engine.records import WAITS_FOR_CHILD, Status, WorkflowRecord
from ..engine.transition import Transition
from ..errors import (
    BadMessage,
    DatabaseError,
    StaleStateError,
    UnstorableValue,
    WorkflowNotFound,
)
from ..execution.effects import prepare_effects, refused, undo
from ..execution.operations import apply_event, cancel_tree
from ..persistence.base import PersistenceProvider
from . import sweep as sweeping
from .continuation import Continuation, soft_limit
from .dispatch import Dispatcher
from .fanout import FanOut, StepOutcomeReport
from .leases import Leases
from .settings import FleetSettings

log = logging.getLogger("ruvon.coordinator")

#: ``observer(event, **data)``, for metrics (``ruvon_workers.observability``): "ended"
#: (``record=``) after a commit here gave a workflow a terminal status, "swept" (``sent=``)
#: after each recovery sweep, "continued" (``workflow_type=``, ``report=``) after a step
#: that ran inside another step's task. An observer that raises is logged and ignored.
OBSERVERS: list[Callable[..., None]] = []

#: Seconds a retry's step message may come before its due time (the clocks of workers
#: differ a little); earlier, it is ignored.
RETRY_CLOCK_GRACE = 1.0


class Coordinator:
    def __init__(self, registry: Registry, persistence: PersistenceProvider,
                 dispatcher: Dispatcher, settings: FleetSettings):
        self.registry = registry
        self.builder = WorkflowBuilder(registry)
        self.persistence = persistence
        self.dispatcher = dispatcher
        self.settings = settings
        self.leases = Leases(registry, settings)
        self.fanout = FanOut(self)

    @staticmethod
    def notify(event: str, **data: Any) -> None:
        for observe in OBSERVERS:
            try:
                observe(event, **data)
            except Exception:
                log.exception("%s observer failed", event)

    # -- publishing ----------------------------------------------------------------------

    def send(self, workflow_type: str, step: str, workflow_id: str, version: int,
             countdown: float | None = None, branch: int | None = None) -> None:
        """Publish a step (or branch) message; a failure leaves it to the sweep."""
        try:
            self.dispatcher.step(workflow_type, step, workflow_id, version, countdown=countdown,
                                 branch=branch)
        except Exception:
            # Committed but not published: the sweep re-sends it when its lease expires.
            log.exception("publishing %s/%s%s failed; the recovery sweep will re-send it",
                          workflow_id, step, "" if branch is None else f"[{branch}]")

    def dispatch(self, record: WorkflowRecord, countdown: float | None = None) -> None:
        """Send the run's current step if it is to run (now, or after ``countdown``)."""
        if record.status != Status.ACTIVE or record.current_step is None:
            return
        if countdown is not None and countdown > self.settings.max_countdown:
            return  # the sweep sends it when due_at passes
        self.send(record.workflow_type, record.current_step, record.id, record.version,
                  countdown=countdown)

    def wake_parent(self, record: WorkflowRecord) -> None:
        """Tell a sub-workflow's parent that it ended or waits for input."""
        parent = record.runtime.parent
        if not parent or not (Status(record.status).is_terminal
                              or record.status == Status.WAITING_HUMAN):
            return
        if parent["workflow_type"] in self.registry:
            self.send(parent["workflow_type"], parent["step"], parent["id"], -1)

    @staticmethod
    def stale(record: WorkflowRecord) -> StepOutcomeReport:
        return StepOutcomeReport(False, f"stale: workflow is {record.status} at "
                                        f"{record.current_step!r} v{record.version}")

    # -- producer operations ------------------------------------------------------------

    async def definition(self, record: WorkflowRecord) -> WorkflowDefinition:
        """The definition ``record``'s run started with (see ``Registry.for_record``)."""
        return await self.registry.for_record(self.persistence, record)

    async def load(self, workflow_id: str) -> WorkflowRecord:
        record = await self.persistence.load_workflow(workflow_id)
        if record is None:
            raise WorkflowNotFound(workflow_id)
        return record

    async def start(self, workflow_type: str, initial_data: dict[str, Any] | None, *,
                    idempotency_key: str | None = None, workflow_id: str | None = None,
                    parent_id: str | None = None,
                    internal_key: str | None = None) -> tuple[WorkflowRecord, bool]:
        """Validate, store and dispatch a new workflow; ``(record, created)``. A
        producer's ``idempotency_key`` may not start with ``ruvon:``; ``internal_key`` is
        one the engine built (a CRON tick's)."""
        record = self.builder.new_record(workflow_type, initial_data,
                                         idempotency_key=idempotency_key,
                                         workflow_id=workflow_id, parent_id=parent_id,
                                         internal_key=internal_key)
        stored, created = await self.builder.insert(self.persistence, record,
                                                    due_in=self.leases.of_record(record))
        if created:
            self.dispatch(stored)
        return stored, created

    def _due_in(self, record: WorkflowRecord, transition: Transition) -> float | None:
        return self.leases.of_transition(record.workflow_type, transition)

    async def _operate(self, workflow_id: str,
                       event: machine.Resume | machine.Retry) -> WorkflowRecord:
        record, _ = await apply_event(self.persistence, self.definition, workflow_id, event,
                                      due_in=self._due_in)
        self.dispatch(record)
        return record

    async def resume(self, workflow_id: str, user_input: dict[str, Any],
                     by: str | None = None) -> WorkflowRecord:
        """Hand input to a workflow waiting for it; the step runs on the fleet (and a
        parent waiting on it learns it is no longer waiting for input). ``by``: who gave
        it, kept in the history."""
        record = await self._operate(workflow_id, machine.Resume(user_input, by))
        link = record.runtime.parent
        if link:  # before this returns, the parent no longer shows its child waiting
            parent = await self.persistence.load_workflow(link["id"])
            if parent is not None and parent.status in WAITS_FOR_CHILD:
                await self._after_child(parent)
        return record

    async def cancel(self, workflow_id: str, reason: str,
                     by: str | None = None) -> WorkflowRecord:
        """Cancel the run and the sub-workflow it waits for; wake its parent. ``by``: who
        asked, kept in the history."""
        async def ended(record: WorkflowRecord) -> None:
            self.ended(record)

        return await cancel_tree(self.persistence, self.definition, workflow_id, reason,
                                 ended, due_in=self._due_in, by=by)

    async def retry(self, workflow_id: str, from_step: str | None = None,
                    by: str | None = None) -> WorkflowRecord:
        """Run a failed (or cancelled) workflow again from ``from_step`` or the failed step;
        ``by``: who asked, kept in the history."""
        return await self._operate(workflow_id, machine.Retry(from_step, by))

    def ended(self, record: WorkflowRecord) -> None:
        """After a commit that ended a run (or made it wait): metrics, and its parent."""
        if Status(record.status).is_terminal:
            self.notify("ended", record=record)
        self.wake_parent(record)

    # -- the fleet's side -------------------------------------------------------------

    async def handle_step(self, workflow_id: str, step: str, version: int,
                          branch: int | None = None, *,
                          workflow_type: str | None = None) -> StepOutcomeReport:
        """Run one step message. Safe to call any number of times for the same message.
        ``workflow_type``: the type the message's task is for; a run of another type
        refuses the message (:class:`BadMessage`)."""
        with self.persistence.pinned():
            if branch is not None:
                return await self.fanout.run(workflow_id, step, version, branch,
                                             workflow_type=workflow_type)
            return await self._handle_step(workflow_id, step, version, workflow_type)

    @staticmethod
    def check_type(record: WorkflowRecord, workflow_type: str | None) -> None:
        """Refuse a step message sent to the task of another workflow type."""
        if workflow_type is not None and record.workflow_type != workflow_type:
            raise BadMessage(f"workflow {record.id} is a {record.workflow_type!r}, not a "
                             f"{workflow_type!r}: its step message went to the task of "
                             f"another workflow type")

    async def _handle_step(self, workflow_id: str, step: str, version: int,
                           workflow_type: str | None = None) -> StepOutcomeReport:
        record = await self.persistence.load_workflow(workflow_id)
        if record is None:
            return StepOutcomeReport(False, "unknown workflow")
        self.check_type(record, workflow_type)
        if record.current_step != step:
            return self.stale(record)
        if record.status in WAITS_FOR_CHILD:
            # A wake-up from the child (or the sweep): any version will do, the child's
            # row says what happened.
            return await self._after_child(record)
        if record.version != version:
            return self.stale(record)
        if record.status == Status.PENDING_ASYNC:
            return await self.fanout.join(record)
        if record.status != Status.ACTIVE:
            return self.stale(record)
        early = self.retry_wait(record, step)
        if early is not None:
            return StepOutcomeReport(False, f"not due yet: retry in {math.ceil(early)} s")
        defn = await self.definition(record)
        continuation = Continuation.for_task(self.settings, defn, step)
        report = await self.commit(record, await machine.decide(defn, record, machine.RunStep()),
                                   continuation)
        if continuation is not None:
            await self._continue(record, defn, continuation)
        return report

    async def _continue(self, record: WorkflowRecord, defn: WorkflowDefinition,
                        continuation: Continuation) -> None:
        """Run, from ``record`` as last committed, the steps ``continuation`` lets this
        task run (``fleet.continuation``), each committed on its own."""
        while (step := continuation.pending) is not None:
            continuation.pending = None
            try:
                try:
                    with soft_limit(step):
                        decided = await machine.decide(defn, record, machine.RunStep())
                except SoftTimeLimitExceeded as exc:  # outside the step's function
                    decided = await machine.decide(defn, record, machine.FailedOutside(exc))
                continued = await self.commit(record, decided, continuation)
            except DatabaseError:
                # The step before it is committed; this one goes as its own task, which
                # waits the outage out (the message this task runs is already stale).
                self.dispatch(record)
                return
            self.notify("continued", workflow_type=record.workflow_type, report=continued)

    @staticmethod
    def retry_wait(record: WorkflowRecord, step: str) -> float | None:
        """Seconds until the retry of ``step`` its retry policy scheduled is due, if a
        message came that much early (one sent for the current version, before the
        countdown or the sweep); a second's grace for the clocks of other workers."""
        runtime = record.runtime
        if runtime.retry_at is None or not runtime.attempts.get(step):
            return None
        wait = runtime.retry_at - time.time()
        return wait if wait > RETRY_CLOCK_GRACE else None

    async def _current(self, workflow_id: str, step: str, version: int,
                       status: str) -> WorkflowRecord | None:
        """The row, if it still is at ``step`` / ``version`` in ``status``."""
        record = await self.persistence.load_workflow(workflow_id)
        if record is None or record.version != version or record.current_step != step \
                or record.status != status:
            return None
        return record

    async def fail_step(self, workflow_id: str, step: str, version: int,
                        exc: BaseException, branch: int | None = None) -> StepOutcomeReport:
        """Record a failed attempt of a step that could not report it itself (its process
        was killed at the hard time limit): retry per its policy, or fail the workflow."""
        if branch is not None:
            record = await self._current(workflow_id, step, version, Status.PENDING_ASYNC)
            if record is None:
                return StepOutcomeReport(False, "stale: the step already moved on")
            return await self.fanout.failed(record, branch, exc, join_here=False)
        record = await self._current(workflow_id, step, version, Status.ACTIVE)
        if record is None:
            return StepOutcomeReport(False, "stale: the step already moved on")
        return await self.commit(record, await machine.decide(
            await self.definition(record), record, machine.FailedOutside(exc)))

    async def worker_lost(self, workflow_id: str, step: str, version: int,
                          branch: int | None = None) -> bool:
        """The pool process running this step (or branch) died: the engine decides
        whether it is sent again or counts as a failed attempt. Returns whether the loss
        is accounted for (the message is then replaced)."""
        record = await self.persistence.load_workflow(workflow_id)
        if record is None or record.version != version or record.current_step != step:
            return True  # already moved on: the lost delivery was a duplicate
        if branch is not None and record.status == Status.PENDING_ASYNC:
            await self.fanout.lost(record, branch)
            return True
        if record.status != Status.ACTIVE:
            return True
        transition = await machine.decide(await self.definition(record), record,
                                          machine.WorkerLost(self.settings.max_worker_lost))
        assert transition is not None
        if transition.update.status == Status.ACTIVE and transition.history:
            log.warning("step %s of %s lost its worker process; sending it again (%d "
                        "allowed)", step, record.id, self.settings.max_worker_lost)
        await self.commit(record, transition)
        return True

    async def _after_child(self, record: WorkflowRecord) -> StepOutcomeReport:
        known = record.runtime.child or {}
        child = await self.persistence.load_workflow(known["id"]) if known.get("id") else None
        if child is None:
            return StepOutcomeReport(False, "sub-workflow not found")
        transition = await machine.decide(await self.definition(record), record,
                                          machine.ChildChanged(child))
        if transition is None:
            return StepOutcomeReport(False, f"sub-workflow is {child.status}")
        return await self.commit(record, transition)

    # -- commit -------------------------------------------------------------------------

    async def commit(self, record: WorkflowRecord, transition: Transition | None,
                     continuation: Continuation | None = None) -> StepOutcomeReport:
        """Perform ``transition``'s side effects, commit it (compare-and-set), then send
        what comes next, or, with a ``continuation`` that allows it, run it here (from
        ``record`` as committed). Losing the compare-and-set changes nothing: what this
        attempt newly started or registered for it is undone (``effects.undo``)."""
        assert transition is not None
        defn = await self.definition(record)
        transition, started, created = await prepare_effects(
            self.builder, self.persistence, defn, record, transition, self.leases.of_record)
        transition.hold_for_operator()
        update = transition.update
        update.due_in = self.leases.of_transition(record.workflow_type, transition)
        if transition.fanout:
            await self.persistence.create_fanout(
                record.id, record.version + 1, transition.step, transition.fanout,
                self.leases.for_step(record.workflow_type, transition.step))
        try:
            version = await self.persistence.apply(record.id, record.version, update,
                                                   transition.history)
        except StaleStateError:
            # Another delivery of this message (or a cancel, an operator) committed first:
            # its result stands, and what this attempt alone started must not run on.
            undone = await undo(self.persistence, record.id, created, self.cancel)
            if undone:
                log.info("step %s of %s lost its commit; undid %s", transition.step,
                         record.id, ", ".join(undone))
            return StepOutcomeReport(False, "lost the compare-and-set to another delivery",
                                     step=transition.step)
        except UnstorableValue as exc:
            # The database refuses what the step produced, and would refuse it on every
            # re-send: fail the step (its saga runs) instead of re-running it forever.
            failure = await refused(defn, record, transition, exc)
            if failure is None:
                raise
            log.error("step %s of %s produced a value PostgreSQL refuses: %s",
                      transition.step, record.id, exc)
            return await self.commit(record, failure)
        update.applied_to(record, version)
        if update.terminal:
            self.notify("ended", record=record)
        for other in started:
            self.dispatch(other)
            # A re-run of the step found its sub-workflow already over (or waiting): the
            # child's own wake-up came before this commit, so wake the parent now.
            self.wake_parent(other)
        for branch in transition.fanout or ():
            self.send(record.workflow_type, transition.step, record.id, version,
                      branch=branch.idx)
        self.wake_parent(record)
        duration = transition.history[0].duration_ms if transition.history else None
        report = StepOutcomeReport(True, status=str(update.status), step=transition.step,
                                   duration_ms=duration,
                                   retry=transition.retry_delay is not None)
        if continuation is not None and continuation.next_step(defn, record, transition):
            return report  # the caller runs it here (``_continue``)
        self.dispatch(record, countdown=transition.retry_delay)
        return report

    # -- background ---------------------------------------------------------------------

    async def fire_schedules(self) -> int:
        return await sweeping.fire_schedules(self)

    async def sweep(self, limit: int = 500) -> int:
        return await sweeping.sweep(self, limit)
