"""Steps of the benchmark workflow: cheap, so the engine's own cost shows."""

from __future__ import annotations

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
