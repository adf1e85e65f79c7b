"""Continuation: one task runs the steps that follow its own, each committed on its own.

Every step hop through the broker costs a whole Celery task (a publish, a delivery, an
acknowledgement, two processes). When a step has committed and the step after it may run
in the same task, the task runs it at once, from the record it already holds (its
version is known: no reload). Each step is still committed by its own compare-and-set
before the next one starts, so a kill loses at most the step that was running.

The successor runs in the same task when (``Continuation.next_step``):

- the task may still run steps (the workflow's ``inline_steps`` in its YAML, or else
  ``RUVON_INLINE_STEPS``; default 1: every step is its own task) and its time budget
  (``RUVON_INLINE_BUDGET_MS``) is not spent;
- it is ACTIVE now, with no retry delay, and its step is not a PARALLEL fan-out;
- it is on the same queue with the same priority, has no ``rate_limit``, and is not
  marked ``inline: false``;
- the task's own step has no ``time_limit_seconds`` (Celery's hard limit would cover the
  whole chain).

A continued step with ``time_limit_seconds`` gets its own soft limit (``soft_limit``).
Otherwise the successor is published as its own task, as without continuation.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from celery.exceptions import SoftTimeLimitExceeded

from ..definitions import StepDefinition, WorkflowDefinition
from ..engine.records import Status, WorkflowRecord
from ..engine.transition import Transition
from ..engine.values import blocking_functions_in_threads
from .settings import FleetSettings

#: Step types that never run inside another step's task: a fan-out's branches and join
#: belong to their own messages.
HOPPING_TYPES = frozenset({"PARALLEL"})


@dataclass
class Continuation:
    """How far one step task may go on running the steps that follow its own."""

    settings: FleetSettings
    queue: str
    priority: int | None
    left: int
    deadline: float
    #: The step to run next in this task, set by :meth:`next_step`.
    pending: StepDefinition | None = None
    continued: int = 0

    @classmethod
    def for_task(cls, settings: FleetSettings, defn: WorkflowDefinition,
                 step_name: str) -> Continuation | None:
        """The continuation of the task running ``step_name``; ``None`` when it runs
        only its own step."""
        limit = settings.inline_steps if defn.inline_steps is None else defn.inline_steps
        if limit <= 1 or not defn.has_step(step_name):
            return None
        step = defn.step(step_name)
        if step.time_limit_seconds:
            return None
        return cls(settings, settings.queue_for(step), step.priority,
                   left=limit - 1,
                   deadline=time.perf_counter() + settings.inline_budget_ms / 1000)

    def next_step(self, defn: WorkflowDefinition, record: WorkflowRecord,
                  transition: Transition) -> StepDefinition | None:
        """The step to run next in this task, after ``transition`` committed; ``None``
        when it is to be published (or nothing runs next)."""
        if self.left <= 0 or time.perf_counter() >= self.deadline:
            return None
        if record.status != Status.ACTIVE or record.current_step is None \
                or transition.retry_delay is not None or transition.fanout:
            return None
        if not defn.has_step(record.current_step):
            return None
        step = defn.step(record.current_step)
        if step.inline is False or step.rate_limit or step.type in HOPPING_TYPES:
            return None
        if self.settings.queue_for(step) != self.queue or step.priority != self.priority:
            return None
        self.left -= 1
        self.continued += 1
        self.pending = step
        return step


@contextmanager
def soft_limit(step: StepDefinition) -> Iterator[None]:
    """Celery's soft time limit for a step that runs inside another step's task: after
    ``time_limit_seconds``, ``SoftTimeLimitExceeded`` is raised in the step, which makes
    it a failed attempt, as in a task of its own. On the main thread of a prefork or solo
    pool process this is a timer signal; on a thread pool, the engine enforces the limit
    already (``StepRunner.call``)."""
    limit = step.time_limit_seconds
    if not limit or blocking_functions_in_threads() \
            or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise SoftTimeLimitExceeded(f"step '{step.name}' ran past its time_limit_seconds "
                                    f"({limit:g} s)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
