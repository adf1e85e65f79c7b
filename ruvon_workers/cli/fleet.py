"""Fleet commands: ``worker``, ``health``."""

from __future__ import annotations

import os
import socket
import time

import click

from .. import settings
from .output import EXIT_FAILED, EXIT_UNAVAILABLE, console, err_console, handle_errors


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None,
              help="Pool processes/threads [default: number of CPUs].")
@click.option("--pool", "-P", type=click.Choice(["prefork", "threads", "solo"]),
              default="prefork", show_default=True)
@click.option("--queues", "-Q", default=None,
              help="Comma-separated queues [default: the default queue and every step queue].")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--hostname", "-n", default=None, help="Node name [default: celery@HOSTNAME].")
@click.option("--registry", envvar="RUVON_REGISTRY", default=None,
              help="workflow_registry.yaml [env: RUVON_REGISTRY].")
@click.option("--broker-url", envvar="CELERY_BROKER_URL", default=None,
              help="[env: CELERY_BROKER_URL]")
@click.option("--database-url", envvar=["DATABASE_URL", "RUVON_DB_URL"], default=None,
              help="[env: DATABASE_URL]")
@click.option("--no-sweep", is_flag=True, help="Do not run the recovery sweep in this worker.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), envvar="RUVON_METRICS_PORT",
              default=9808, show_default=True,
              help="Serve Prometheus metrics on this port at /metrics; 0 turns them off "
                   "[env: RUVON_METRICS_PORT].")
@click.pass_context
@handle_errors
def worker(ctx: click.Context, concurrency: int | None, pool: str, queues: str | None,
           loglevel: str, hostname: str | None, registry: str | None, broker_url: str | None,
           database_url: str | None, no_sweep: bool, metrics_port: int) -> None:
    """Run a worker of the fleet: every step of every registered workflow is a task.

    Shuts down warm on SIGTERM (running steps finish; Celery's soft-shutdown timeout is
    RUVON_SOFT_SHUTDOWN_TIMEOUT). Other options are passed on to `celery worker`.
    """
    from .. import observability
    from ..definitions import load_registry
    from ..fleet.app import create_app
    from ..fleet.worker import run_worker, worker_argv

    if metrics_port:
        # Before the registry's modules or the pool's processes import prometheus_client.
        observability.prepare_multiprocess()

    db = settings.database_url(database_url)
    broker = settings.broker_url(broker_url)
    path = settings.registry_path(registry)
    # Pool processes read these from the environment.
    os.environ.update({"DATABASE_URL": db or "", "CELERY_BROKER_URL": broker or "",
                       "RUVON_REGISTRY": str(path.resolve())})
    app = create_app(load_registry(path), broker)
    if metrics_port:
        observability.install(app, metrics_port,
                              os.getenv("RUVON_METRICS_ADDRESS") or "0.0.0.0")
    argv = worker_argv(app, concurrency=concurrency, pool=pool, queues=queues,
                       loglevel=loglevel, hostname=hostname, extra=tuple(ctx.args))
    run_worker(app, argv, sweep=not no_sweep)


@click.group()
def health() -> None:
    """Health checks for probes (exit 0 when healthy)."""


@health.command()
@click.option("--max-age", type=float, default=60.0, show_default=True,
              help="Seconds since the last heartbeat.")
def live(max_age: float) -> None:
    """The worker process is alive (its heartbeat file is fresh). Does not use the
    broker, so a broker outage does not restart workers."""
    from ..fleet.background import heartbeat_path

    path = heartbeat_path()
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        err_console.print(f"no heartbeat at {path}: the worker has not started (yet)")
        raise SystemExit(EXIT_FAILED) from None
    if age > max_age:
        err_console.print(f"heartbeat is {age:.0f}s old (limit {max_age:.0f}s)")
        raise SystemExit(EXIT_FAILED)
    console.print(f"alive (heartbeat {age:.0f}s ago)")


def _ping(destination: list[str] | None, timeout: float) -> list[dict[str, object]]:
    from celery import Celery

    app = Celery(broker=settings.broker_url(), set_as_current=False)
    app.conf.accept_content = ["json"]
    try:
        return app.control.ping(destination=destination, timeout=timeout) or []
    finally:
        app.close()


def _answers(destination: list[str] | None, timeout: float,
             silence: str) -> list[dict[str, object]]:
    """The ping replies; exit 6 when the broker is unreachable, 1 when nobody answers."""
    try:
        replies = _ping(destination, timeout)
    except Exception as exc:
        err_console.print(f"broker unreachable: {exc}")
        raise SystemExit(EXIT_UNAVAILABLE) from None
    if not replies:
        err_console.print(silence)
        raise SystemExit(EXIT_FAILED)
    return replies


@health.command()
@click.option("--timeout", type=float, default=3.0, show_default=True)
@click.option("--hostname", "-n", default=None, help="Node name [default: celery@HOSTNAME].")
@handle_errors
def ready(timeout: float, hostname: str | None) -> None:
    """This host's worker answers a ping through the broker."""
    node = hostname or f"celery@{socket.gethostname()}"
    _answers([node], timeout, f"{node} did not answer within {timeout:g}s")
    console.print(f"{node} is ready")


@health.command()
@click.option("--timeout", type=float, default=3.0, show_default=True)
@handle_errors
def fleet(timeout: float) -> None:
    """At least one worker of the fleet answers a ping."""
    for reply in _answers(None, timeout, f"no worker answered within {timeout:g}s"):
        for node in reply:
            console.print(f"{node} ok")
