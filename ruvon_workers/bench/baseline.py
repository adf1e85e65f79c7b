"""The raw Celery baselines, Redis broker and Redis result backend (``celery -A
ruvon_workers.bench.baseline worker``): a chain of the same five no-op steps passing the
~5 KB dict, and, for the fan-out benchmark, a chord with a task per order line."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery, chain, chord, group

app = Celery("ruvon_bench_baseline", set_as_current=False)
app.conf.update(
    broker_url=os.getenv("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"),
    broker_read_url=os.getenv("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"),
    broker_write_url=os.getenv("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"),
    result_backend=os.getenv("BENCH_RESULT_URL", "redis://127.0.0.1:6379/0"),
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_default_queue=os.getenv("BENCH_QUEUE", "bench-baseline"),
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.step")
def step(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@app.task(name="bench.last")
def last(payload: dict[str, Any]) -> dict[str, Any]:
    # Only the completion time comes back: the driver reads it from the result backend.
    return {"done_at": time.time()}


def start_chain(payload: dict[str, Any]) -> Any:
    """Start one 5-step chain; returns the AsyncResult of its last task."""
    return chain(step.s(payload), step.s(), step.s(), step.s(), last.s()).apply_async()


@app.task(name="bench.price_line")
def price_line(line: dict[str, Any]) -> dict[str, float]:
    return {line["sku"]: round(line["quantity"] * line["unit_price"], 2)}


@app.task(name="bench.total")
def total(results: list[dict[str, float]]) -> dict[str, Any]:
    merged: dict[str, float] = {}
    for result in results:
        merged.update(result)
    return {"done_at": time.time(), "total": round(sum(merged.values()), 2)}


def start_fan_out(payload: dict[str, Any]) -> Any:
    """One chord: a task per order line, then the callback; returns the callback's result."""
    return chord(group(price_line.s(line) for line in payload["lines"]))(total.s())
