"""Fleet settings: leases, the recovery sweep, and what Celery is told."""

from __future__ import annotations

from dataclasses import dataclass

from ..definitions import Registry, StepDefinition
from ..settings import default_queue, float_env

#: Grace between a step's soft time limit (its ``time_limit_seconds``) and the hard kill.
HARD_LIMIT_GRACE = float_env("RUVON_HARD_LIMIT_GRACE", 10.0)


@dataclass(frozen=True)
class FleetSettings:
    default_queue: str
    #: Seconds a dispatched step may take (queue wait + run) before the sweep re-sends it,
    #: for steps without ``time_limit_seconds``.
    lease_seconds: float
    #: How often each worker runs the recovery sweep.
    sweep_interval: float
    #: Retries due sooner than this are sent with a countdown; later ones wait in
    #: PostgreSQL (``due_at``) for the sweep, so no countdown outlives the visibility timeout.
    max_countdown: float
    #: How often each worker fires due CRON schedules (0: this worker does not).
    scheduler_interval: float = 1.0
    #: A step whose pool process dies under it (OOM killer, a crash in native code) is
    #: sent again this many times; the next loss is a failed attempt of the step.
    max_worker_lost: int = 2
    #: How often each worker records that it is alive, with the steps it holds (whose
    #: leases it renews); a worker silent for ``worker_silent`` seconds is gone, and
    #: what it held is sent again at the next sweep.
    worker_beat: float = 2.0
    worker_silent: float = 6.0
    #: Ended workflows (and dead letters) older than this many days are removed by a
    #: periodic run on every worker, every ``retention_interval`` seconds (0: never).
    retention_days: float = 0.0
    retention_interval: float = 3600.0
    #: The most steps one step task runs: its own, then the ones that follow while they
    #: may run there (``fleet.continuation``); 1, the default, sends every step as its
    #: own task. ``inline_budget_ms``: no further step starts after this long.
    inline_steps: int = 1
    inline_budget_ms: float = 500.0

    @classmethod
    def from_env(cls) -> FleetSettings:
        beat = float_env("RUVON_WORKER_BEAT", 2.0)
        return cls(
            default_queue=default_queue(),
            lease_seconds=float_env("RUVON_LEASE_SECONDS", 300.0),
            sweep_interval=float_env("RUVON_SWEEP_INTERVAL", 5.0),
            max_countdown=float_env("RUVON_MAX_COUNTDOWN", 60.0),
            scheduler_interval=float_env("RUVON_SCHEDULER_INTERVAL", 1.0),
            max_worker_lost=int(float_env("RUVON_MAX_WORKER_LOST", 2)),
            worker_beat=beat,
            worker_silent=float_env("RUVON_WORKER_SILENT", 3 * beat),
            retention_days=float_env("RUVON_RETENTION_DAYS", 0.0),
            retention_interval=float_env("RUVON_RETENTION_INTERVAL", 3600.0),
            inline_steps=max(1, int(float_env("RUVON_INLINE_STEPS", 1))),
            inline_budget_ms=float_env("RUVON_INLINE_BUDGET_MS", 500.0),
        )

    def lease_for(self, step: StepDefinition) -> float:
        if step.time_limit_seconds:
            return step.time_limit_seconds + HARD_LIMIT_GRACE + 30.0
        return self.lease_seconds

    def queue_for(self, step: StepDefinition) -> str:
        return step.queue or self.default_queue

    def visibility_timeout(self, registry: Registry) -> float:
        """Redis redelivers an unacknowledged message after this long: it must outlast the
        longest step (hard limit), any countdown, and a lease."""
        override = float_env("RUVON_VISIBILITY_TIMEOUT", 0.0)
        if override:
            return override
        limits = [d.longest_time_limit or 0.0 for d in registry]
        longest = max(limits, default=0.0) + HARD_LIMIT_GRACE
        return max(3600.0, 2 * longest, 2 * self.lease_seconds, 4 * self.max_countdown)


#: The task of a step that only an earlier definition of its workflow has (a run started
#: before its file changed, see ``Registry.for_record``).
EARLIER_STEP_TASK = "ruvon.step"


def step_task_name(workflow_type: str, step_name: str) -> str:
    return f"ruvon.step.{workflow_type}.{step_name}"
