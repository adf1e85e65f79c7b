"""Monitoring commands: ``flower`` (Celery's web monitor for the fleet) and ``metrics``
(per-step durations from the database)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import click

from ..client import Client
from .output import EXIT_INVALID, emit_json, err_console, fail, handle_errors, table

AUTH_ENV = "FLOWER_BASIC_AUTH"
#: The tasks page's columns: the task name is ``ruvon.step.<WorkflowType>.<Step>`` and the
#: kwargs carry the workflow id (FLOWER_TASKS_COLUMNS or --tasks_columns override it).
TASKS_COLUMNS = "name,kwargs,state,received,runtime,result,worker,uuid"


def check_basic_auth(value: str) -> str | None:
    """Why ``value`` is not a valid ``user:password[,user:password...]`` list, or None."""
    for entry in value.split(","):
        user, sep, password = entry.partition(":")
        if not sep or not user.strip() or not password:
            return f"{AUTH_ENV} entries must look like user:password (got {entry.strip()!r})"
    return None


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True,
              envvar="FLOWER_PORT", help="[env: FLOWER_PORT]")
@click.option("--address", default="127.0.0.1", show_default=True, envvar="FLOWER_ADDRESS",
              help="Address to listen on (0.0.0.0 in a container) [env: FLOWER_ADDRESS].")
@click.option("--broker-url", envvar="CELERY_BROKER_URL", default=None,
              help="[env: CELERY_BROKER_URL]")
@click.option("--registry", envvar="RUVON_REGISTRY", default=None,
              help="workflow_registry.yaml, for the task names [env: RUVON_REGISTRY].")
@click.option("--no-auth", is_flag=True,
              help=f"Run without a login (ignores {AUTH_ENV}). Anyone who reaches the port "
                   "can see and control the fleet.")
@click.pass_context
@handle_errors
def flower(ctx: click.Context, port: int, address: str, broker_url: str | None,
           registry: str | None, no_auth: bool) -> None:
    """Run Flower for the fleet: workers, and every step task with its workflow id.

    Logs in with HTTP basic auth from FLOWER_BASIC_AUTH (user:password; several
    comma-separated). Find all the tasks of one workflow by searching for its id.
    Needs the broker only, not the database. Other options are passed on to Flower.
    """
    from .. import settings
    from ..definitions import load_registry
    from ..fleet.app import create_app

    auth = os.environ.get(AUTH_ENV, "").strip()
    if no_auth:
        os.environ.pop(AUTH_ENV, None)
        err_console.print("[yellow]warning:[/] Flower runs without a login (--no-auth)")
    elif not auth:
        fail(f"Flower needs a login: set {AUTH_ENV}=user:password (several: comma-separated), "
             "or pass --no-auth to run it open.", EXIT_INVALID)
    elif problem := check_basic_auth(auth):
        fail(problem, EXIT_INVALID)
    app = create_app(load_registry(settings.registry_path(registry)),
                     settings.broker_url(broker_url))
    argv = ["flower", f"--port={port}", f"--address={address}"]
    if "FLOWER_TASKS_COLUMNS" not in os.environ and not any(
            a.lstrip("-").startswith("tasks_columns") for a in ctx.args):
        argv.append(f"--tasks_columns={TASKS_COLUMNS}")
    # The login stays in the environment (Flower reads FLOWER_BASIC_AUTH), not in argv.
    app.start([*argv, *ctx.args])


def _ms(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}"


@click.command()
@click.argument("workflow_type")
@click.option("--database-url", envvar=["DATABASE_URL", "RUVON_DB_URL"], default=None,
              help="[env: DATABASE_URL]")
@click.option("--registry", envvar="RUVON_REGISTRY", default=None, help="[env: RUVON_REGISTRY]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def metrics(workflow_type: str, database_url: str | None, registry: str | None,
            as_json: bool) -> None:
    """Per-step duration summaries of WORKFLOW_TYPE (completed steps, from the database)."""
    from .. import settings

    db = settings.database_url(database_url)
    # The durations come from PostgreSQL alone: the broker is never contacted.
    with Client(db, "memory://", registry) as client:
        rows = client.step_durations(workflow_type)
    if as_json:
        emit_json([dataclasses.asdict(r) for r in rows])
        return
    table(f"{workflow_type}: step durations (ms)", ["step", "runs", "mean", "p50", "p95", "max"],
          [(r.step, r.n, _ms(r.mean_ms), _ms(r.p50_ms), _ms(r.p95_ms), _ms(r.max_ms))
           for r in rows])
