"""Drive N workflows with C in flight through the fleet, then the same through a raw
Celery chain, and measure both in the same run (the machine is shared and noisy:
compare ratios, not absolute numbers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import redis

from ..definitions import load_registry
from ..persistence import migrate as migrations
from ..utils.redis_urls import redis_client
from .models import make_state
from .processes import (
    WorkerProcess,
    baseline_worker,
    cpu_seconds,
    peak_rss_kb,
    rss_kb,
    ruvon_worker,
)

STEPS = 5
Progress = Callable[[str, int, int], None]


@dataclass
class BenchConfig:
    workflows: int = 1000
    in_flight: int = 100
    workers: int = 1
    concurrency: int = 2
    pool: str = "prefork"
    state_lines: int = 30
    warmup: int = 50
    idle_samples: int = 30
    env: dict[str, str] = field(default_factory=dict)
    #: The fan-out benchmark: one PARALLEL step with a branch per order line, then a final
    #: step; the baseline is a Celery chord. Otherwise the 5-step chain.
    fan_out: bool = False

    @property
    def workflow_type(self) -> str:
        return "BenchFanOut" if self.fan_out else "BenchOrder"

    @property
    def steps(self) -> int:
        """Units of work per workflow: the steps, or the branches and the final step."""
        return self.state_lines + 1 if self.fan_out else STEPS

    @property
    def baseline_name(self) -> str:
        return "raw celery chord" if self.fan_out else "raw celery chain"


@dataclass
class RunResult:
    name: str
    workflows: int
    seconds: float
    workflows_per_s: float
    steps_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    idle_p50_ms: float | None
    peak_rss_mb: float
    memory_per_in_flight_kb: float
    #: Worker CPU per step during the measured run: the workers' main processes
    #: (consuming, handing to the pool, acknowledging) and their pool processes (running
    #: the task: for the fleet the engine and the publish of the next step).
    main_cpu_ms_per_step: float | None = None
    pool_cpu_ms_per_step: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_registry() -> Path:
    return Path(str(resources.files("ruvon_workers.bench").joinpath("workflow_registry.yaml")))


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


class _MemorySampler:
    """The workers' memory during the measured run, and the CPU their main and pool
    processes spent in it."""

    def __init__(self, workers: list[WorkerProcess]):
        self.workers = workers
        self.idle_kb = rss_kb(self.pids())
        self.max_kb = self.idle_kb
        self.cpu_at_start = self.cpu()

    def cpu(self) -> tuple[dict[int, float], dict[int, float]]:
        """CPU seconds so far of every main process and every pool process, by pid."""
        mains = {w.proc.pid: cpu_seconds(w.proc.pid) for w in self.workers}
        pool = {p: cpu_seconds(p) for w in self.workers for p in w.pids if p not in mains}
        return mains, pool

    def cpu_ms_per_step(self, steps: int) -> tuple[float, float]:
        """(main, pool) CPU milliseconds per step since the sampler started."""
        spent = []
        for start, end in zip(self.cpu_at_start, self.cpu(), strict=True):
            spent.append(sum(v - start.get(pid, 0.0) for pid, v in end.items()))
        return spent[0] * 1000 / max(steps, 1), spent[1] * 1000 / max(steps, 1)

    def pids(self) -> list[int]:
        return [p for w in self.workers for p in w.pids]

    def sample(self) -> None:
        self.max_kb = max(self.max_kb, rss_kb(self.pids()))

    def per_in_flight_kb(self, in_flight: int) -> float:
        return max(self.max_kb - self.idle_kb, 0) / max(in_flight, 1)

    def peak_mb(self) -> float:
        return peak_rss_kb(self.pids()) / 1024


def _result(name: str, cfg: BenchConfig, latencies: list[float], seconds: float,
            idle: list[float], sampler: _MemorySampler) -> RunResult:
    main_cpu, pool_cpu = sampler.cpu_ms_per_step(cfg.workflows * cfg.steps)
    return RunResult(
        name=name, workflows=cfg.workflows, seconds=seconds,
        workflows_per_s=cfg.workflows / seconds, steps_per_s=cfg.workflows * cfg.steps / seconds,
        p50_ms=_quantile(latencies, 0.5), p95_ms=_quantile(latencies, 0.95),
        p99_ms=_quantile(latencies, 0.99),
        idle_p50_ms=statistics.median(idle) if idle else None,
        peak_rss_mb=sampler.peak_mb(),
        memory_per_in_flight_kb=sampler.per_in_flight_kb(cfg.in_flight),
        main_cpu_ms_per_step=main_cpu, pool_cpu_ms_per_step=pool_cpu,
    )


# -- the fleet ------------------------------------------------------------------------


class _FleetDriver:
    def __init__(self, db_url: str, broker: str, queue: str, cfg: BenchConfig):
        from ..client import AsyncClient

        os.environ["RUVON_DEFAULT_QUEUE"] = queue
        self.db_url = db_url
        self.cfg = cfg
        self.client = AsyncClient(db_url, broker, load_registry(bench_registry()))

    async def run(self, count: int, in_flight: int, progress: Progress | None,
                  sampler: _MemorySampler | None) -> tuple[list[float], float]:
        latencies: list[float] = []
        first_created = float("inf")
        last_done = 0.0
        pending: set[str] = set()
        launched = 0
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            while len(latencies) < count:
                while len(pending) < in_flight and launched < count:
                    pending.add(await self.client.start(self.cfg.workflow_type,
                                                        make_state(launched, self.cfg.state_lines)))
                    launched += 1
                await asyncio.sleep(0.01)
                cur = await conn.execute(
                    "SELECT id::text, extract(epoch FROM created_at)::float8, "
                    "extract(epoch FROM completed_at)::float8, status FROM workflow_executions "
                    "WHERE id = ANY(%s::uuid[]) AND completed_at IS NOT NULL", (list(pending),))
                for wid, created, done, status in await cur.fetchall():
                    if status != "COMPLETED":
                        raise RuntimeError(f"benchmark workflow {wid} ended {status}")
                    pending.discard(wid)
                    latencies.append((done - created) * 1000)
                    first_created = min(first_created, created)
                    last_done = max(last_done, done)
                if sampler:
                    sampler.sample()
                if progress:
                    progress("fleet", len(latencies), count)
        return latencies, last_done - first_created


def run_fleet(db_url: str, broker: str, cfg: BenchConfig, tmp: Path,
              progress: Progress | None = None, name: str = "ruvon") -> RunResult:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    migrations.migrate(db_url)
    env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": broker,
           "RUVON_REGISTRY": str(bench_registry()), "RUVON_DEFAULT_QUEUE": queue, **cfg.env}
    workers = [ruvon_worker(i, env, tmp, cfg.concurrency, cfg.pool, queue)
               for i in range(cfg.workers)]
    driver = _FleetDriver(db_url, broker, queue, cfg)
    try:
        return asyncio.run(_fleet_phases(driver, workers, cfg, progress, name))
    finally:
        for worker in workers:
            worker.stop()


async def _fleet_phases(driver: _FleetDriver, workers: list[WorkerProcess], cfg: BenchConfig,
                        progress: Progress | None, name: str) -> RunResult:
    try:
        # The warm-up reaches full in-flight, so memory measured after it is the load's.
        await driver.run(max(cfg.warmup, 2 * cfg.in_flight), cfg.in_flight, None, None)
        idle, _ = await driver.run(cfg.idle_samples, 1, None, None) if cfg.idle_samples else ([], 0)
        sampler = _MemorySampler(workers)
        latencies, seconds = await driver.run(cfg.workflows, cfg.in_flight, progress, sampler)
        return _result(name, cfg, latencies, seconds, idle, sampler)
    finally:
        await driver.client.close()


# -- the raw Celery baseline ----------------------------------------------------------


def _redis_client(url: str) -> redis.Redis:
    return redis_client(url)


def _baseline_batch(app_module: Any, r: redis.Redis, count: int, in_flight: int,
                    cfg: BenchConfig, progress: Progress | None,
                    sampler: _MemorySampler | None) -> tuple[list[float], float]:
    latencies: list[float] = []
    pending: dict[str, float] = {}
    launched = 0
    first = float("inf")
    last = 0.0
    while len(latencies) < count:
        while len(pending) < in_flight and launched < count:
            started = time.time()
            start = app_module.start_fan_out if cfg.fan_out else app_module.start_chain
            result = start(make_state(launched, cfg.state_lines))
            pending[result.id] = started
            first = min(first, started)
            launched += 1
        time.sleep(0.01)
        ids = list(pending)
        for task_id, raw in zip(ids, r.mget([f"celery-task-meta-{i}" for i in ids]),
                                strict=True):
            if raw is None:
                continue
            meta = json.loads(raw)
            if meta.get("status") != "SUCCESS":
                raise RuntimeError(f"baseline chain failed: {meta}")
            done = float(meta["result"]["done_at"])
            latencies.append((done - pending.pop(task_id)) * 1000)
            last = max(last, done)
        if sampler:
            sampler.sample()
        if progress:
            progress("raw celery", len(latencies), count)
    return latencies, last - first


def run_baseline(broker: str, cfg: BenchConfig, tmp: Path,
                 progress: Progress | None = None) -> RunResult:
    queue = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BENCH_BROKER_URL": broker, "BENCH_RESULT_URL": broker,
           "BENCH_QUEUE": queue}
    saved = {k: os.environ.get(k) for k in env if k.startswith("BENCH_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("BENCH_")})
    import importlib

    from . import baseline

    baseline = importlib.reload(baseline)  # picks up this run's broker and queue
    workers = [baseline_worker(i, env, tmp, cfg.concurrency, cfg.pool)
               for i in range(cfg.workers)]
    r = _redis_client(broker)
    try:
        _baseline_batch(baseline, r, max(cfg.warmup, 2 * cfg.in_flight), cfg.in_flight, cfg,
                        None, None)  # also waits for the workers to be ready
        idle, _ = _baseline_batch(baseline, r, cfg.idle_samples, 1, cfg, None, None)
        sampler = _MemorySampler(workers)
        latencies, seconds = _baseline_batch(baseline, r, cfg.workflows, cfg.in_flight, cfg,
                                             progress, sampler)
        return _result(cfg.baseline_name, cfg, latencies, seconds, idle, sampler)
    finally:
        for worker in workers:
            worker.stop()
        with contextlib.suppress(Exception):
            for key in r.scan_iter("celery-task-meta-*", count=1000):
                r.delete(key)
        r.close()
        baseline.app.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def services(db_url: str | None, broker: str | None) -> Iterator[tuple[str, str]]:
    if db_url and broker:
        yield db_url, broker
        return
    from ..embedded import embedded_services

    with embedded_services(postgres=not db_url, redis=not broker) as emb:
        yield db_url or emb.database_url, broker or emb.broker_url


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ruvon-bench-") as tmp:
        yield Path(tmp)
