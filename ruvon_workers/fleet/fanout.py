"""PARALLEL on the fleet: run one branch per message, count the fan-out down, join.

Each branch's outcome is stored with the fan-in counter decremented in the same statement
(``finish_branch``), so exactly one branch sees the counter reach zero; that one runs the
join, a compare-and-set like any commit. A branch message whose branch already finished,
or whose workflow moved on, changes nothing. What a branch does and whether a failed one
runs again are the engine's rules (``engine.steps.parallel``, ``StepRunner.retry_delay``),
the same as in-process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine import machine
from ..engine.records import Status, WorkflowRecord
from ..engine.runner import StepRunner
from ..engine.steps.parallel import COMPLETED, FAILED, PENDING, due_to_join, run_branch
from ..engine.transition import elapsed_ms, error_info
from ..errors import StepFailed, UnstorableValue, WorkerLost

if TYPE_CHECKING:
    from .coordinator import Coordinator

log = logging.getLogger("ruvon.coordinator")


@dataclass
class StepOutcomeReport:
    """What handling one step message did (for logs, metrics and tests)."""

    applied: bool
    reason: str = ""
    status: str | None = None
    step: str | None = None
    duration_ms: float | None = None
    retry: bool = False


class FanOut:
    """The branch side of the coordinator."""

    def __init__(self, coordinator: Coordinator):
        self.coordinator = coordinator
        self.store = coordinator.persistence
        self.settings = coordinator.settings

    async def _runner(self, record: WorkflowRecord) -> StepRunner:
        return StepRunner(await self.coordinator.definition(record), record)

    async def run(self, workflow_id: str, step: str, version: int, idx: int, *,
                  workflow_type: str | None = None) -> StepOutcomeReport:
        """Run branch ``idx`` of the fan-out the workflow waits on at ``version``."""
        record, branch = await self.store.load_branch(workflow_id, version, idx)
        if record is None:
            return StepOutcomeReport(False, "unknown workflow")
        self.coordinator.check_type(record, workflow_type)
        if (record.status != Status.PENDING_ASYNC or record.version != version
                or record.current_step != step):
            return self.coordinator.stale(record)
        if branch is None or branch.status != PENDING:
            return StepOutcomeReport(False, f"branch {idx} already finished")
        runner = await self._runner(record)
        started = time.perf_counter()
        attempt = branch.attempt + 1
        try:
            result = await run_branch(runner.defn, runner.step, record, branch, attempt)
        except Exception as exc:
            return await self.failed(record, idx, exc, started=started, attempt=attempt)
        return await self._done(record, idx, COMPLETED, result, None, attempt, started)

    async def failed(self, record: WorkflowRecord, idx: int, exc: BaseException, *,
                     started: float | None = None, attempt: int | None = None,
                     join_here: bool = True) -> StepOutcomeReport:
        """A failed attempt of a branch: again per the step's retry policy, or FAILED.
        ``join_here=False`` (the worker's main process): a join this makes due is sent to
        a pool process, as merge functions and compensations are user code."""
        started = time.perf_counter() if started is None else started
        if attempt is None:
            branch = await self.store.get_branch(record.id, record.version, idx)
            if branch is None or branch.status != PENDING:
                return StepOutcomeReport(False, f"branch {idx} already finished")
            attempt = branch.attempt + 1
        runner = await self._runner(record)
        error = error_info(runner.step.name, exc)
        delay = runner.retry_delay(exc, attempt)
        if delay is not None:
            send_now = delay <= self.settings.max_countdown
            wait = delay + (self.settings.lease_seconds if send_now else 0)
            if not await self.store.retry_branch(record.id, record.version, idx,
                                                 attempt=attempt, error=error, delay=wait):
                return StepOutcomeReport(False, f"branch {idx} already finished")
            if send_now:
                self.coordinator.send(record.workflow_type, runner.step.name, record.id,
                                      record.version, countdown=delay, branch=idx)
            return StepOutcomeReport(True, status="RETRYING", step=runner.step.name,
                                     retry=True)
        return await self._done(record, idx, FAILED, None, error, attempt, started,
                                join_here=join_here)

    async def lost(self, record: WorkflowRecord, idx: int) -> None:
        """The pool process running the branch died: send it again, or, past
        ``max_worker_lost`` attempts, count it as failed."""
        step = record.current_step or ""
        exc = WorkerLost(f"the worker process running branch {idx} of step '{step}' died")
        counted = await self.store.lose_branch(record.id, record.version, idx,
                                               error=error_info(step, exc),
                                               lease_seconds=self.settings.lease_seconds)
        if counted is None:
            return  # it had finished
        lost, attempt = counted
        if lost > self.settings.max_worker_lost:
            await self.failed(record, idx, exc, attempt=attempt + 1, join_here=False)
            return
        self.coordinator.send(record.workflow_type, step, record.id, record.version,
                              branch=idx)

    async def _done(self, record: WorkflowRecord, idx: int, status: str, result: Any,
                    error: dict[str, Any] | None, attempt: int,
                    started: float, *, join_here: bool = True) -> StepOutcomeReport:
        duration = elapsed_ms(started)
        try:
            remaining = await self.store.finish_branch(
                record.id, record.version, idx, status=status, result=result, error=error,
                attempt=attempt, duration_ms=duration)
        except UnstorableValue as exc:
            if status != COMPLETED:
                raise
            # Refused on every re-send too: the branch fails instead of running forever.
            step = record.current_step or ""
            error = error_info(step, StepFailed(step, f"branch {idx}'s result cannot be "
                                                      f"stored: {exc}"))
            return await self._done(record, idx, FAILED, None, error, attempt, started)
        if remaining is None:
            return StepOutcomeReport(False, f"branch {idx} already finished")
        if remaining == 0 and not join_here:
            self.coordinator.send(record.workflow_type, record.current_step or "",
                                  record.id, record.version)
        elif remaining == 0:
            # The last branch in joins right here (a compare-and-set like any commit); if
            # that fails, the step's own message does it, and failing that, the sweep.
            try:
                await self.join(record)
            except Exception:
                log.exception("joining %s/%s failed; sending the join", record.id,
                              record.current_step)
                self.coordinator.send(record.workflow_type, record.current_step or "",
                                      record.id, record.version)
        return StepOutcomeReport(True, status=status, step=record.current_step,
                                 duration_ms=duration)

    async def join(self, record: WorkflowRecord) -> StepOutcomeReport:
        """Merge the branches and move on, once all have reported or the step's
        ``timeout_seconds`` has passed; otherwise nothing."""
        branches = await self.store.list_branches(record.id, record.version)
        deadline = record.runtime.parallel["deadline"] if record.runtime.parallel else None
        if not due_to_join(branches, deadline):
            remaining = sum(1 for b in branches if b.status == PENDING)
            return StepOutcomeReport(False, f"waiting for {remaining} branch(es)")
        version = record.version
        transition = await machine.decide(await self.coordinator.definition(record),
                                          record, machine.Join(branches))
        report = await self.coordinator.commit(record, transition)
        if report.applied:
            await self.store.close_fanout(record.id, version)
        return report
