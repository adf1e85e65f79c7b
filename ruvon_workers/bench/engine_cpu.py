"""Engine CPU per step: the coordinator's own work (load, run, commit: database client and
codec) without Celery, measured in-process against the real database. With
``inline_steps`` > 1, as under continuation: a message's task runs the steps after its own
from the row it holds (no reload)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

from ..definitions import load_registry
from ..fleet.factory import build_coordinator, build_store
from ..fleet.settings import FleetSettings
from ..persistence.postgres import QUERY_OBSERVERS
from .models import make_state

STEPS = 5  # the benchmark workflow's


class _CollectingDispatcher:
    """Stands in for the broker: remembers the next message instead of publishing it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []

    def step(self, workflow_type: str, step_name: str, workflow_id: str, version: int,
             countdown: float | None = None, branch: int | None = None) -> None:
        self.sent.append((workflow_id, step_name, version))


@dataclass
class EngineCost:
    steps: int
    cpu_ms_per_step: float
    wall_ms_per_step: float
    db_round_trips_per_step: float
    db_round_trips_per_start: float


async def _measure(db_url: str, workflows: int, state_lines: int,
                   inline_steps: int = 1) -> EngineCost:
    from .runner import bench_registry

    registry = load_registry(bench_registry())
    # As in a prefork worker process: one step at a time, the blocking driver.
    persistence = build_store("step", db_url)
    await persistence.initialize()
    dispatcher = _CollectingDispatcher()
    coordinator = build_coordinator(persistence, registry=registry,
                                    dispatcher=dispatcher,  # type: ignore[arg-type]
                                    settings=replace(FleetSettings.from_env(),
                                                     inline_steps=inline_steps,
                                                     inline_budget_ms=60_000.0))
    queries: list[str] = []
    QUERY_OBSERVERS.append(lambda operation, _: queries.append(operation))
    try:
        for n in range(workflows):
            await coordinator.start("BenchOrder", make_state(n, state_lines))
        starts = len(queries)
        queries.clear()
        queue, dispatcher.sent = dispatcher.sent, []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        while queue:
            for message in queue:
                report = await coordinator.handle_step(*message)
                if not report.applied:
                    raise RuntimeError(f"step not applied: {report.reason}")
            queue, dispatcher.sent = dispatcher.sent, []
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        steps = workflows * STEPS  # every workflow ran to its end (or a step raised above)
    finally:
        QUERY_OBSERVERS.pop()
        await persistence.close()
    return EngineCost(steps, cpu * 1000 / steps, wall * 1000 / steps, len(queries) / steps,
                      starts / workflows)


def measure_engine_cost(db_url: str, workflows: int = 200, state_lines: int = 30,
                        inline_steps: int = 1) -> EngineCost:
    return asyncio.run(_measure(db_url, workflows, state_lines, inline_steps))
