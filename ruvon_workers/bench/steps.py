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
