"""``ruvon-workers demo``: the example orders on a real fleet, with nothing to set up.

Without DATABASE_URL / CELERY_BROKER_URL it starts an embedded PostgreSQL and Redis;
it then migrates, starts a worker process, runs the example workflows (one pauses for a
manager's approval and is resumed), then the order fulfillment example (every step type;
its carrier API is served by this process), shows progress, prints the outcome, and
cleans up. With ``--serve`` it first serves the dashboard and the API until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import settings
from ..client import Client
from ..examples.fulfillment.carrier import carrier_api
from ..persistence import migrate as migrations
from .demo_fulfillment import DEMO_CARRIER_TOKEN, WORKFLOW, print_fulfillment, run_fulfillment
from .output import EXIT_FAILED, console, fail, handle_errors, table

SMALL_ORDERS = 20


def demo_orders() -> list[tuple[str, dict[str, Any]]]:
    orders: list[tuple[str, dict[str, Any]]] = [
        (f"order A-{100 + i}", {"order_id": f"A-{100 + i}", "customer_id": f"c-{i}",
                                "ship_to_country": "DE",
                                "items": [{"sku": "book", "quantity": 1 + i % 3,
                                           "unit_price": 12.5}]})
        for i in range(SMALL_ORDERS)
    ]
    orders.append(("large order (needs approval)", {
        "order_id": "B-200", "customer_id": "c-big", "ship_to_country": "FR",
        "items": [{"sku": "laptop", "quantity": 1, "unit_price": 1899.0}]}))
    orders.append(("unshippable order (refunded)", {
        "order_id": "C-300", "customer_id": "c-far", "ship_to_country": "ZZ",
        "items": [{"sku": "lamp", "quantity": 1, "unit_price": 40.0}]}))
    return orders


@contextlib.contextmanager
def _services(db_url: str | None, broker: str | None) -> Iterator[tuple[str, str]]:
    if db_url and broker:
        yield db_url, broker
        return
    from ..embedded import embedded_services

    missing = [n for n, v in (("PostgreSQL", db_url), ("Redis", broker)) if not v]
    console.print(f"[dim]No {' or '.join(missing)} configured: starting embedded "
                  f"server(s) (removed afterwards) ...[/]")
    with embedded_services(postgres=not db_url, redis=not broker) as services:
        yield db_url or services.database_url, broker or services.broker_url


def _allowing(url: str) -> str:
    """``RUVON_HTTP_ALLOWED_HOSTS`` for the worker: the list already set, plus the host of
    the carrier API, which serves on loopback (refused unless the list names it)."""
    host = urlsplit(url).hostname or "127.0.0.1"
    current = os.getenv("RUVON_HTTP_ALLOWED_HOSTS", "").strip().rstrip(",")
    return f"{current},{host}" if current else host


@contextlib.contextmanager
def _worker(env: dict[str, str], heartbeat: Path, log_path: Path) -> Iterator[None]:
    cmd = [sys.executable, "-m", "ruvon_workers.cli.main", "worker", "--concurrency", "2",
           "--loglevel", "WARNING", "--without-mingle", "--without-gossip"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not heartbeat.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    fail("the worker did not start:\n" + log_path.read_text()[-3000:],
                         EXIT_FAILED)
                time.sleep(0.1)
            yield
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # warm shutdown
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


@click.command()
@click.option("--registry", type=click.Path(dir_okay=False), default=None,
              help="Registry to load [env: RUVON_REGISTRY; default: the example].")
@click.option("--serve", is_flag=True,
              help="Then keep the worker running and serve the dashboard and the REST API "
                   "until Ctrl-C.")
@click.option("--port", default=8000, show_default=True, type=int,
              help="The dashboard's port (with --serve).")
@handle_errors
def demo(registry: str | None, serve: bool, port: int) -> None:
    """Run the example order workflows on a real worker and print how each ended.

    Uses DATABASE_URL / CELERY_BROKER_URL when set, otherwise embedded servers.
    """
    registry_file = settings.registry_path(registry).resolve()
    token = os.getenv("RUVON_SECRET_CARRIER_TOKEN") or DEMO_CARRIER_TOKEN
    with tempfile.TemporaryDirectory(prefix="ruvon-demo-") as tmp, \
            carrier_api(token=token) as carrier, \
            _services(settings.database_url(required=False),
                      settings.broker_url(required=False)) as (db_url, broker):
        console.print("Applying the schema ...")
        migrations.migrate(db_url)
        heartbeat = Path(tmp, "heartbeat")
        env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": broker,
               "RUVON_REGISTRY": str(registry_file), "RUVON_HEARTBEAT_FILE": str(heartbeat),
               "POSTGRES_POOL_MIN_SIZE": "1", "RUVON_SECRET_CARRIER_TOKEN": token,
               "RUVON_HTTP_ALLOWED_HOSTS": _allowing(carrier.url)}
        console.print("Starting a worker (2 processes) ...")
        with _worker(env, heartbeat, Path(tmp, "worker.log")):
            with Client(db_url, broker, registry_file) as client:
                rows, elapsed = _run(client)
                fulfilled = (run_fulfillment(client, carrier.url)
                             if WORKFLOW in client.registry else None)
            _report(rows, elapsed, fulfilled, serving=serve)
            if serve:
                _serve(db_url, broker, registry_file, port)


def _report(rows: list[tuple[str, ...]], elapsed: float, fulfilled: Any, *,
            serving: bool) -> None:
    # Every small order ends the same way: show two of them and the two special ones.
    shown = rows[:2] + rows[SMALL_ORDERS:]
    table(f"Demo results ({len(shown)} of {len(rows)})",
          ["workflow", "status", "steps", "outcome"], shown)
    statuses = Counter(r[1] for r in rows)
    console.print(f"\n{len(rows)} workflows in {elapsed:.1f}s: "
                  + ", ".join(f"{n} {s}" for s, n in statuses.items()))
    if fulfilled is not None:
        console.print()
        print_fulfillment(*fulfilled)
    if serving:
        return
    metrics_port = os.getenv("RUVON_METRICS_PORT", "9808")
    console.print(
        "\nNext:\n"
        "  - see these workflows in the dashboard: `ruvon-workers demo --serve`\n"
        "  - run your own fleet: `ruvon-workers worker` with DATABASE_URL, CELERY_BROKER_URL "
        "and RUVON_REGISTRY set\n"
        "  - start and inspect workflows: `ruvon-workers start|list|show|logs`, or over HTTP "
        "with `ruvon-workers server`\n"
        "  - CRON schedules: `ruvon-workers schedules list|remove NAME` (the fulfillment "
        "example keeps a daily-stock-report)\n"
        f"  - metrics: a running worker serves http://127.0.0.1:{metrics_port}/metrics\n"
        "  - Flower: `FLOWER_BASIC_AUTH=admin:secret ruvon-workers flower` "
        "(http://127.0.0.1:5555)\n"
        "  - README.md: the Python API, the YAML schema, deploying with Helm")


def _serve(db_url: str, broker: str, registry_file: Path, port: int) -> None:
    """The dashboard and API over the demo's database, with the worker still running,
    until Ctrl-C; signed in with ``RUVON_API_TOKEN`` or a token made up for the demo."""
    import secrets

    import uvicorn

    from ..client import AsyncClient
    from ..server import Role, TokenAuthenticator, create_app
    from ..server.app import config_from_env

    api_token = os.getenv("RUVON_API_TOKEN") or secrets.token_urlsafe(24)
    app = create_app(AsyncClient(db_url, broker, registry_file),
                     TokenAuthenticator({api_token: Role.ADMIN}), config_from_env())
    base = f"http://127.0.0.1:{port}"
    console.print(f"\nDashboard: {base}/ui/\nLogin token (admin): {api_token}\n"
                  f"API: {base}/api/v1 (OpenAPI at {base}/docs), "
                  f"`Authorization: Bearer <token>`\n"
                  "The worker keeps running: start workflows from the API and watch them. "
                  "Ctrl-C stops everything.", soft_wrap=True)
    sys.stdout.flush()  # piped output: the login must show before serving starts
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _run(client: Client) -> tuple[list[tuple[str, ...]], float]:
    started = time.monotonic()
    orders = demo_orders()
    ids = [(label, client.start("OrderProcessing", data)) for label, data in orders]
    pending = {wid for _, wid in ids}
    approved = False
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task("Running workflows", total=len(ids))
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            for wid in list(pending):
                info = client.get(wid)
                if info.status == "WAITING_HUMAN" and not approved:
                    progress.console.print(f"  {info.state['order_id']} waits at "
                                           f"{info.current_step}: approving as 'dana'")
                    client.resume(wid, {"approved": True, "approver": "dana"})
                    approved = True
                elif info.finished:
                    pending.discard(wid)
                    progress.advance(bar)
            time.sleep(0.05)
    if pending:
        fail(f"{len(pending)} workflow(s) did not finish in time; see the worker log",
             EXIT_FAILED)
    rows: list[tuple[str, ...]] = []
    for label, wid in ids:
        info = client.get(wid)
        steps = sum(1 for h in client.history(wid) if h.status == "COMPLETED")
        rows.append((label, info.status, str(steps), ", ".join(info.state.get("log", []))))
    return rows, time.monotonic() - started
