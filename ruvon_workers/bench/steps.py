"""Steps of the benchmark workflow: cheap, so the engine's own cost shows."""

from __future__ import annotations

import os
import time

from ruvon_workers import StepContext

from .models import BenchState


def validate(state: BenchState, context: StepContext) -> dict:
    return {"validated": True}


def price(state: BenchState, context: StepContext) -> dict:
    return {"priced": True, "total": round(sum(x.quantity * x.unit_price for x in state.lines), 2)}


def finalize(state: BenchState, context: StepContext) -> dict:
    return {"finalized": True}


def price_line(state: dict, context: StepContext, line: dict) -> dict:
    """A PARALLEL branch of the fan-out benchmark: one order line."""
    return {"line_totals": {line["sku"]: round(line["quantity"] * line["unit_price"], 2)}}


def total_lines(state: BenchState, context: StepContext) -> dict:
    return {"finalized": True, "total": round(sum(state.line_totals.values()), 2)}


def _service_call(context: StepContext) -> None:
    """Take ``RUVON_SOAK_STEP_MS``; with ``RUVON_SOAK_LOG`` (a directory) set, first note
    which step of which workflow this worker starts (the soak finds there what a kill
    interrupted)."""
    log_dir = os.getenv("RUVON_SOAK_LOG")
    if log_dir:
        with open(os.path.join(log_dir, f"{os.getppid()}.log"), "a") as log:
            log.write(f"{context.workflow_id} {context.step_name}\n")
    time.sleep(float(os.getenv("RUVON_SOAK_STEP_MS", "20")) / 1000)


def soak_validate(state: BenchState, context: StepContext) -> dict:
    _service_call(context)
    return validate(state, context)


def soak_price(state: BenchState, context: StepContext) -> dict:
    _service_call(context)
    return price(state, context)


def soak_finalize(state: BenchState, context: StepContext) -> dict:
    _service_call(context)
    return finalize(state, context)
