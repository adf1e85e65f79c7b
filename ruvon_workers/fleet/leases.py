"""Lease arithmetic: when the recovery sweep may (re)send a run's step.

Every row the fleet must still move carries a ``due_at``. A step that is sent and runs
finishes before its lease; one whose message died (a killed worker, a flushed broker, a
crash between commit and publish) is re-sent by the sweep once its lease passes.
"""

from __future__ import annotations

import time

from ..definitions import Registry
from ..engine.records import WAITS_FOR_CHILD, Status, WorkflowRecord
from ..engine.runtime import Runtime
from ..engine.transition import Transition
from .settings import FleetSettings


class Leases:
    def __init__(self, registry: Registry, settings: FleetSettings):
        self.registry = registry
        self.settings = settings

    def due_in(self, workflow_type: str, status: str, step: str | None,
               retry_delay: float | None = None,
               runtime: Runtime | None = None) -> float | None:
        """Seconds until the sweep (re)sends this run's step, or ``None`` (not due)."""
        settings = self.settings
        if step is None:
            return None
        if status in WAITS_FOR_CHILD:
            return settings.lease_seconds  # wakes the parent if a child's word is lost
        if status == Status.PENDING_ASYNC:
            deadline = runtime.parallel["deadline"] if runtime and runtime.parallel else None
            if deadline is not None:
                return max(min(deadline - time.time() + 0.5, settings.lease_seconds), 0)
            return settings.lease_seconds
        if status != Status.ACTIVE:
            return None
        lease = self.for_step(workflow_type, step)
        if retry_delay is None:
            return lease
        if retry_delay > settings.max_countdown:
            return retry_delay  # not published: the sweep sends it when the delay is over
        # Published with a countdown: the lease covers the wait and the run, so the sweep
        # does not send a second copy while the first one is due or running.
        return retry_delay + lease

    def of_record(self, record: WorkflowRecord) -> float | None:
        return self.due_in(record.workflow_type, record.status, record.current_step,
                           runtime=record.runtime)

    def of_transition(self, workflow_type: str, transition: Transition) -> float | None:
        update = transition.update
        return self.due_in(workflow_type, update.status, update.current_step,
                           transition.retry_delay, update.runtime)

    def for_step(self, workflow_type: str, step: str) -> float:
        """How long one run of ``step`` may take before it counts as lost."""
        defn = self.registry.get(workflow_type)
        return self.settings.lease_for(defn.step(step)) if defn.has_step(step) else 0.0
