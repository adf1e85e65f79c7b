"""The seed's performance sections, measured here, plus the fleet against raw Celery.

    python tests/benchmarks/workflow_performance.py [--quick] [--skip-fleet]

Uses DATABASE_URL / CELERY_BROKER_URL when set, otherwise embedded servers. Every figure
is measured in this run; compare ratios, the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import uvloop

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from ruvon_workers.bench.models import BenchState, make_state  # noqa: E402
from ruvon_workers.utils import imports  # noqa: E402


# ``Callable[..., Any]``: ``fn`` is called without arguments, but mypy cannot match a lambda
# that binds its argument as a default (``lambda s=state: ...``) to ``Callable[[], Any]``.
def ops_per_s(fn: Callable[..., Any], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        n += 100
    return n / elapsed


def serialization(seconds: float) -> None:
    print("Serialization (state dict -> JSON) and deserialization, ops/s:")
    for label, lines in (("~5 KB", 30), ("~10 KB", 60)):
        state = BenchState.model_validate(make_state(1, lines)).model_dump(mode="json")
        text = json.dumps(state)
        raw = orjson.dumps(state)
        o_d = ops_per_s(lambda s=state: orjson.dumps(s), seconds)
        s_d = ops_per_s(lambda s=state: json.dumps(s), seconds)
        o_l = ops_per_s(lambda r=raw: orjson.loads(r), seconds)
        s_l = ops_per_s(lambda t=text: json.loads(t), seconds)
        print(f"  {label} ({len(raw):,} bytes)")
        print(f"    dumps  orjson {o_d:>12,.0f}   stdlib {s_d:>10,.0f}   speedup {o_d / s_d:4.1f}x")
        print(f"    loads  orjson {o_l:>12,.0f}   stdlib {s_l:>10,.0f}   speedup {o_l / s_l:4.1f}x")


def import_caching(seconds: float) -> None:
    path = "ruvon_workers.bench.steps.validate"

    def uncached() -> None:
        imports.IMPORT_CACHE.pop(path, None)
        imports.import_from_string(path)

    cold = ops_per_s(uncached, seconds)
    warm = ops_per_s(lambda: imports.import_from_string(path), seconds)
    print("Import resolution (module already loaded; the first import of a module costs more):")
    print(f"  uncached {1e6 / cold:8.2f} us   cached {1e6 / warm:6.3f} us   "
          f"speedup {warm / cold:5.1f}x")


def event_loops(db_url: str, queries: int) -> None:
    async def noop() -> None:
        return None

    async def select_loop(url: str) -> float:
        import psycopg

        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for _ in range(50):
                await (await conn.execute("SELECT 1", prepare=True)).fetchone()
            start = time.perf_counter()
            for _ in range(queries):
                await (await conn.execute("SELECT 1", prepare=True)).fetchone()
            return (time.perf_counter() - start) / queries * 1e6

    print("Event loops: asyncio vs uvloop")
    results: dict[str, dict[str, float]] = {}
    for name, factory in (("asyncio", asyncio.new_event_loop), ("uvloop", uvloop.new_event_loop)):
        start_us = []
        for _ in range(300):
            t = time.perf_counter()
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(noop())
            start_us.append((time.perf_counter() - t) * 1e6)
        with asyncio.Runner(loop_factory=factory) as runner:
            per_query = runner.run(select_loop(db_url))
            t = time.perf_counter()
            for _ in range(2000):
                runner.run(noop())
            in_loop = (time.perf_counter() - t) / 2000 * 1e6
        start_us.sort()
        results[name] = {"start": start_us[len(start_us) // 2], "query": per_query,
                         "run_in_loop": in_loop}
    a, u = results["asyncio"], results["uvloop"]
    print(f"  start a loop + run a no-op   asyncio {a['start']:7.1f} us   "
          f"uvloop {u['start']:7.1f} us   ({a['start'] / u['start']:.2f}x)")
    print(f"  Runner.run(no-op), loop kept asyncio {a['run_in_loop']:7.1f} us   "
          f"uvloop {u['run_in_loop']:7.1f} us   ({a['run_in_loop'] / u['run_in_loop']:.2f}x)")
    print(f"  async psycopg SELECT 1       asyncio {a['query']:7.1f} us   "
          f"uvloop {u['query']:7.1f} us   ({a['query'] / u['query']:.2f}x)")


def fleet(db_url: str, broker: str, quick: bool) -> None:
    from dataclasses import replace

    from ruvon_workers.bench.engine_cpu import measure_engine_cost
    from ruvon_workers.bench.runner import BenchConfig, run_baseline, run_fleet, scratch

    cfg = BenchConfig()
    if quick:
        cfg = replace(cfg, workflows=200, in_flight=50, warmup=20, idle_samples=10)
    print(f"End to end: {cfg.workflows} workflows (5 steps: 3 STANDARD, 2 DECISION, ~5 KB "
          f"state), {cfg.in_flight} in flight, {cfg.workers} worker x {cfg.concurrency} "
          f"({cfg.pool})")
    with scratch() as tmp:
        ours = run_fleet(db_url, broker, cfg, tmp)
        theirs = run_baseline(broker, cfg, tmp)
    engine = measure_engine_cost(db_url, 50 if quick else 200)
    for label, key, better in (("workflows/s", "workflows_per_s", "higher"),
                               ("p50 ms", "p50_ms", "lower"), ("p99 ms", "p99_ms", "lower"),
                               ("idle p50 ms (1 in flight)", "idle_p50_ms", "lower"),
                               ("memory per in-flight workflow KB", "memory_per_in_flight_kb",
                                "lower")):
        a, b = getattr(ours, key), getattr(theirs, key)
        ratio = a / b if a is not None and b else float("nan")
        print(f"  {label:34s} ruvon {a:10.2f}   raw chain {b:10.2f}   ratio {ratio:5.2f} "
              f"({better} is better)")
    print(f"  engine CPU per step (no Celery)    {engine.cpu_ms_per_step:.3f} ms, "
          f"{engine.db_round_trips_per_step:.1f} database round trips per step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (CI smoke)")
    parser.add_argument("--skip-fleet", action="store_true", help="micro benchmarks only")
    args = parser.parse_args()
    seconds = 0.2 if args.quick else 1.0
    serialization(seconds)
    import_caching(seconds)
    from ruvon_workers.bench.runner import services

    with services(os.getenv("DATABASE_URL"), os.getenv("CELERY_BROKER_URL")) as (db, broker):
        event_loops(db, 300 if args.quick else 3000)
        if not args.skip_fleet:
            fleet(db, broker, args.quick)


if __name__ == "__main__":
    main()
