"""The fleet's Prometheus metrics (names and buckets of the performance guide).

In a worker, import this only after :func:`~.multiproc.prepare_multiprocess`: the metrics
are then shared by the prefork pool's processes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WORKFLOW_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60)
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5)
DB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5)
LAG_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300)

#: Step outcomes (``ruvon_steps_total{outcome}``): committed and moved on; committed a
#: failure that will be retried; committed a failure that ended the workflow; changed
#: nothing (a duplicate or out-of-date message); refused (dead-lettered); raised.
OUTCOMES = ("applied", "retry", "failed", "stale", "rejected", "error")

workflow_duration = Histogram(
    "ruvon_workflow_duration_seconds",
    "Workflow execution duration, from start to end (one observation per workflow)",
    ["workflow_type", "status"], buckets=WORKFLOW_BUCKETS)
step_duration = Histogram(
    "ruvon_step_duration_seconds", "Step execution duration", ["step_name"],
    buckets=STEP_BUCKETS)
db_query_duration = Histogram(
    "ruvon_db_query_duration_seconds", "Database query duration", ["operation"],
    buckets=DB_BUCKETS)
workflows_started = Counter(
    "ruvon_workflows_started",
    "Workflows started (counted once, when the fleet runs their first step)",
    ["workflow_type"])
steps = Counter(
    "ruvon_steps", "Step messages handled, by outcome",
    ["workflow_type", "step_name", "outcome"])
step_retries = Counter(
    "ruvon_step_retries",
    "Step retries: cause=step_error (the retry policy), cause=database (PostgreSQL down)",
    ["workflow_type", "step_name", "cause"])
recovery_redispatched = Counter(
    "ruvon_recovery_redispatched", "Steps the recovery sweep re-sent after their lease expired")
queue_lag = Histogram(
    "ruvon_queue_lag_seconds",
    "Time from dispatch (or the end of a retry countdown) to the task starting", ["queue"],
    buckets=LAG_BUCKETS)
pool_active = Gauge(
    "ruvon_db_pool_active_connections", "PostgreSQL connections in use (psycopg_pool)",
    multiprocess_mode="livesum")
pool_max = Gauge(
    "ruvon_db_pool_max_size", "Maximum size of the PostgreSQL pools (psycopg_pool)",
    multiprocess_mode="livesum")
workflows = Gauge(
    "ruvon_workflows", "Workflows in the database, by status (the same for every worker)",
    ["status"], multiprocess_mode="livemostrecent")


def observe_query(operation: str, seconds: float) -> None:
    db_query_duration.labels(operation=operation).observe(seconds)


def init_labels(workflow_types: list[str]) -> None:
    """Export zero for every workflow type, so rates start from a known value."""
    for workflow_type in workflow_types:
        workflows_started.labels(workflow_type=workflow_type)


def set_pool(active: int, maximum: int) -> None:
    pool_active.set(active)
    pool_max.set(maximum)


def set_statuses(counts: dict[str, int], statuses: list[str]) -> None:
    for status in sorted({*statuses, *counts}):
        workflows.labels(status=status).set(counts.get(status, 0))
