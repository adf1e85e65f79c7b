"""``ruvon-workers bench``: the fleet against a raw Celery chain, in the same run."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import settings
from .output import console, emit_json, handle_errors, table

ABLATIONS: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("RUVON_USE_ORJSON=false", {"RUVON_USE_ORJSON": "false"}, {}),
    ("RUVON_USE_UVLOOP=false", {"RUVON_USE_UVLOOP": "false"}, {}),
    ("pool 1/1 (small)", {"POSTGRES_POOL_MIN_SIZE": "1", "POSTGRES_POOL_MAX_SIZE": "1"}, {}),
    ("pool 10/50 (seed default)",
     {"POSTGRES_POOL_MIN_SIZE": "10", "POSTGRES_POOL_MAX_SIZE": "50"}, {}),
    ("threads pool", {}, {"pool": "threads"}),
]


def _ratio(ours: float | None, theirs: float | None, higher_is_better: bool) -> str:
    if ours is None or theirs is None or not theirs or math.isnan(ours) or math.isnan(theirs):
        return "-"
    value = ours / theirs
    return f"{value:.2f}x" + ("" if higher_is_better else " (lower is better)")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:,.{digits}f}"


@click.command()
@click.option("--workflows", "-n", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--in-flight", "-c", type=click.IntRange(1), default=100, show_default=True)
@click.option("--workers", "-k", type=click.IntRange(1), default=1, show_default=True,
              help="Worker processes (each with its own pool).")
@click.option("--concurrency", type=click.IntRange(1), default=2, show_default=True)
@click.option("--pool", type=click.Choice(["prefork", "threads", "solo"]), default="prefork",
              show_default=True)
@click.option("--state-kb", type=click.Choice(["5", "10"]), default="5", show_default=True)
@click.option("--quick", is_flag=True,
              help="A small run for smoke tests (200 workflows; 40 with --fan-out).")
@click.option("--fan-out", is_flag=True,
              help="Each workflow is one PARALLEL step with a branch per order line (30), "
                   "then a final step; the baseline is a Celery chord.")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also run the raw Celery chain and print ratios.")
@click.option("--inline", "inline", type=click.IntRange(1), default=1, show_default=True,
              help="Also run the fleet with RUVON_INLINE_STEPS=N (continuation: up to N "
                   "steps per task), beside the default mode and the raw chain.")
@click.option("--ablations", is_flag=True,
              help="Also measure with orjson off, uvloop off, pool sizes, threads pool.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def bench(workflows: int, in_flight: int, workers: int, concurrency: int, pool: str,
          state_kb: str, quick: bool, fan_out: bool, baseline: bool, inline: int,
          ablations: bool, as_json: bool) -> None:
    """Measure the fleet (5-step workflow, ~5 KB state) beside a raw Celery chain.

    Uses DATABASE_URL / CELERY_BROKER_URL when set, otherwise embedded servers.
    Numbers drift on a shared machine: read the ratios.
    """
    from ..bench.engine_cpu import measure_engine_cost
    from ..bench.runner import BenchConfig, run_baseline, run_fleet, scratch, services

    cfg = BenchConfig(workflows=workflows, in_flight=min(in_flight, workflows), workers=workers,
                      concurrency=concurrency, pool=pool, state_lines=30 if state_kb == "5" else 60,
                      fan_out=fan_out)
    if quick:
        # About 1,000 steps (a fan-out workflow is 31 of them).
        cfg = replace(cfg, workflows=40 if fan_out else 200,
                      in_flight=min(in_flight, 20 if fan_out else 50), warmup=20,
                      idle_samples=5 if fan_out else 10)
    results: dict[str, Any] = {"config": cfg.__dict__}
    with services(settings.database_url(required=False),
                  settings.broker_url(required=False)) as (db_url, broker), scratch() as tmp, \
            Progress(TextColumn("{task.description:>22}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), console=console, disable=as_json) as progress:
        bars: dict[str, Any] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in bars:
                bars[name] = progress.add_task(name, total=total)
            progress.update(bars[name], completed=done)

        ours = run_fleet(db_url, broker, cfg, tmp, report)
        results["ruvon"] = ours.as_dict()
        if inline > 1:
            continued = replace(cfg, env={**cfg.env, "RUVON_INLINE_STEPS": str(inline)})
            results["ruvon_inline"] = run_fleet(db_url, broker, continued, tmp, report,
                                                name=f"fleet, inline {inline}").as_dict()
            results["ruvon_inline"]["inline_steps"] = inline
        if baseline:
            theirs = run_baseline(broker, cfg, tmp, report)
            results["baseline"] = theirs.as_dict()
        if not fan_out:
            progress.update(progress.add_task("engine CPU per step", total=1), completed=0)
            cost = measure_engine_cost(db_url, workflows=50 if quick else 200,
                                       state_lines=cfg.state_lines)
            results["engine"] = cost.__dict__
            if inline > 1:
                cost = measure_engine_cost(db_url, workflows=50 if quick else 200,
                                           state_lines=cfg.state_lines, inline_steps=inline)
                results["engine_inline"] = cost.__dict__
        if ablations:
            results["ablations"] = {}
            for label, env, changes in ABLATIONS:
                variant = replace(cfg, env={**cfg.env, **env}, **changes)
                bars.pop("fleet", None)
                result = run_fleet(db_url, broker, variant, tmp, report, name=label)
                results["ablations"][label] = result.as_dict()
    if as_json:
        emit_json(results)
        return
    _print(results, cfg)


def _print(results: dict[str, Any], cfg: Any) -> None:
    ours, theirs = results["ruvon"], results.get("baseline")
    if "ruvon_inline" in results:
        _print_modes(results, cfg)
        return
    rows = []
    steps_label = "branches + steps/s" if cfg.fan_out else "steps/s"
    unit = "branch or step" if cfg.fan_out else "step"
    spec = [("workflows/s", "workflows_per_s", True, 1), (steps_label, "steps_per_s", True, 1),
            ("p50 latency (ms)", "p50_ms", False, 1), ("p95 latency (ms)", "p95_ms", False, 1),
            ("p99 latency (ms)", "p99_ms", False, 1),
            ("idle fleet p50, 1 in flight (ms)", "idle_p50_ms", False, 1),
            ("peak RSS per worker process (MB)", "peak_rss_mb", False, 1),
            ("worker memory per in-flight workflow (KB)", "memory_per_in_flight_kb", False, 2),
            (f"worker CPU per {unit}, main processes (ms)", "main_cpu_ms_per_step", False, 3),
            (f"worker CPU per {unit}, pool processes (ms)", "pool_cpu_ms_per_step", False, 3)]
    for label, key, higher, digits in spec:
        a = ours.get(key)
        b = theirs.get(key) if theirs else None
        rows.append((label, _fmt(a, digits), _fmt(b, digits), _ratio(a, b, higher)))
    shape = (f"fan-out of {cfg.state_lines} branches + 1 step" if cfg.fan_out
              else f"{cfg.steps} steps")
    table(f"{cfg.workflows} workflows ({shape}), {cfg.in_flight} in flight, {cfg.workers} "
          f"worker(s) x {cfg.concurrency} ({cfg.pool}), "
          f"{'5' if cfg.state_lines == 30 else '10'} KB state",
          ["metric", "ruvon", cfg.baseline_name, "ratio ruvon/raw"], rows)
    engine = results.get("engine")
    if engine:
        console.print(f"engine per step (load + run + commit, no Celery), over "
                      f"{engine['steps']} steps: {engine['cpu_ms_per_step']:.3f} ms CPU, "
                      f"{engine['wall_ms_per_step']:.3f} ms wall, "
                      f"{engine['db_round_trips_per_step']:.2f} database round trips "
                      f"(+{engine['db_round_trips_per_start']:.0f} per workflow start)")
    if "ablations" in results:
        base = theirs["workflows_per_s"] if theirs else None
        table("Ablations (fleet only)", ["variant", "workflows/s", "p99 (ms)", "vs raw chain",
                                         "vs default"],
              [(name, _fmt(r["workflows_per_s"]), _fmt(r["p99_ms"]),
                _ratio(r["workflows_per_s"], base, True),
                _ratio(r["workflows_per_s"], ours["workflows_per_s"], True))
               for name, r in results["ablations"].items()])


def _print_modes(results: dict[str, Any], cfg: Any) -> None:
    """The default mode and continuation beside the raw chain, from the same run."""
    ours, inline, theirs = results["ruvon"], results["ruvon_inline"], results.get("baseline")
    n = inline["inline_steps"]
    spec = [("workflows/s", "workflows_per_s", True), ("steps/s", "steps_per_s", True),
            ("p50 latency (ms)", "p50_ms", False), ("p99 latency (ms)", "p99_ms", False),
            ("idle fleet p50, 1 in flight (ms)", "idle_p50_ms", False),
            ("peak RSS per worker process (MB)", "peak_rss_mb", False),
            ("worker CPU per step, main processes (ms)", "main_cpu_ms_per_step", False),
            ("worker CPU per step, pool processes (ms)", "pool_cpu_ms_per_step", False)]
    rows = []
    for label, key, higher in spec:
        a, c = ours.get(key), inline.get(key)
        b = theirs.get(key) if theirs else None
        digits = 3 if key.endswith("cpu_ms_per_step") else 1
        rows.append((label, _fmt(a, digits), _fmt(c, digits), _fmt(b, digits),
                     _ratio(a, b, higher), _ratio(c, b, higher)))
    table(f"{cfg.workflows} workflows ({cfg.steps} steps), {cfg.in_flight} in flight, "
          f"{cfg.workers} worker(s) x {cfg.concurrency} ({cfg.pool})",
          ["metric", "ruvon (1 step/task)", f"ruvon (inline {n})", cfg.baseline_name,
           "default/raw", f"inline {n}/raw"], rows)
    for key, label in (("engine", "one step per task"), ("engine_inline", f"inline {n}")):
        engine = results.get(key)
        if engine:
            console.print(f"engine per step ({label}; no Celery): "
                          f"{engine['cpu_ms_per_step']:.3f} ms CPU, "
                          f"{engine['db_round_trips_per_step']:.2f} database round trips")
