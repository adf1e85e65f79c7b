"""Producer and operator commands: start, show, list, resume, retry, cancel, logs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from ..client import Client, WorkflowInfo
from ..utils.serialization import deserialize, serialize
from .output import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_TIMEOUT,
    console,
    emit_json,
    fail,
    handle_errors,
    status_option,
    table,
)


def _client_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("--database-url", envvar=["DATABASE_URL", "RUVON_DB_URL"], default=None,
                  help="[env: DATABASE_URL]")
    @click.option("--broker-url", envvar="CELERY_BROKER_URL", default=None,
                  help="[env: CELERY_BROKER_URL]")
    @click.option("--registry", envvar="RUVON_REGISTRY", default=None,
                  help="[env: RUVON_REGISTRY]")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @wraps(fn)
    def wrapper(*args: Any, database_url: str | None, broker_url: str | None,
                registry: str | None, **kwargs: Any) -> Any:
        with Client(database_url, broker_url, registry) as client:
            return fn(client, *args, **kwargs)

    return wrapper


def _json_arg(value: str | None, what: str) -> dict[str, Any]:
    if not value:
        return {}
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as fh:
                value = fh.read()
        except OSError as exc:
            fail(f"cannot read {what} from {value[1:]}: {exc.strerror}", EXIT_INVALID)
    try:
        data = deserialize(value)
    except ValueError as exc:
        fail(f"{what} is not valid JSON: {exc}", EXIT_INVALID)
    if not isinstance(data, dict):
        fail(f"{what} must be a JSON object, got {type(data).__name__}", EXIT_INVALID)
    return data


def _info_dict(info: WorkflowInfo) -> dict[str, Any]:
    return {"id": info.id, "workflow_type": info.workflow_type, "status": info.status,
            "current_step": info.current_step, "state": info.state, "error": info.error,
            "version": info.version, "parent_id": info.parent_id, "child": info.child,
            "created_at": info.created_at, "updated_at": info.updated_at}


def _print_info(info: WorkflowInfo) -> None:
    console.print(f"[bold]{info.workflow_type}[/] {info.id}")
    console.print(f"  status:  {info.status}")
    console.print(f"  step:    {info.current_step or '-'}")
    console.print(f"  version: {info.version}   updated: {info.updated_at}")
    if info.parent_id:
        console.print(f"  parent:  {info.parent_id}")
    if info.child:
        child = info.child
        console.print(f"  child:   {child.get('workflow_type')} {child.get('id')} "
                      f"{child.get('status')} at {child.get('current_step') or '-'}")
    if info.error:
        console.print(f"  error:   [red]{info.error.get('type')}: {info.error.get('message')}[/]"
                      f" (step {info.error.get('step')})", soft_wrap=True)
    console.print("  state:   " + serialize(info.state), soft_wrap=True)


@click.command()
@click.argument("workflow_type")
@click.option("--data", "-d", default=None, help="Initial data as JSON, or @file.json.")
@click.option("--idempotency-key", "-k", default=None,
              help="Starting again with the same key returns the same workflow.")
@click.option("--wait", "wait_seconds", type=float, default=None,
              help="Wait up to this many seconds for it to finish or wait for input.")
@_client_options
@handle_errors
def start(client: Client, workflow_type: str, data: str | None, idempotency_key: str | None,
          wait_seconds: float | None, as_json: bool) -> None:
    """Start a workflow on the fleet and print its id."""
    workflow_id = client.start(workflow_type, _json_arg(data, "--data"), idempotency_key)
    if wait_seconds is None:
        if as_json:
            emit_json({"id": workflow_id})
        else:
            click.echo(workflow_id)
        return
    _wait_and_print(client, workflow_id, wait_seconds, as_json)


def _wait_and_print(client: Client, workflow_id: str, seconds: float, as_json: bool) -> None:
    try:
        info = client.wait(workflow_id, seconds)
    except TimeoutError as exc:
        fail(f"{exc}. Is a worker running? (`ruvon-workers worker`)", EXIT_TIMEOUT)
    if as_json:
        emit_json(_info_dict(info))
    else:
        _print_info(info)
    if info.status not in ("COMPLETED", "WAITING_HUMAN"):
        raise SystemExit(EXIT_FAILED)


@click.command()
@click.argument("workflow_id")
@_client_options
@handle_errors
def show(client: Client, workflow_id: str, as_json: bool) -> None:
    """Show a workflow: status, current step, state, error (and the branches a PARALLEL
    step waits on)."""
    info = client.get(workflow_id)
    branches = client.branches(workflow_id) if info.status == "PENDING_ASYNC" else []
    if as_json:
        emit_json({**_info_dict(info), **({"branches": branches} if branches else {})})
        return
    _print_info(info)
    if branches:
        counts = Counter(b["status"] for b in branches)
        console.print(f"  branches: {counts.get('COMPLETED', 0)} of {len(branches)} done, "
                      f"{counts.get('FAILED', 0)} failed, {counts.get('PENDING', 0)} running")
        for b in branches:
            if b["status"] == "FAILED":
                console.print(f"    [red]{b['name']}: {(b['error'] or {}).get('message')}[/]",
                              soft_wrap=True)


@click.command(name="list")
@click.option("--status", "-s", default=None, callback=status_option,
              help="Only this status, e.g. FAILED or WAITING_HUMAN.")
@click.option("--type", "-t", "workflow_type", default=None, help="Only this workflow type.")
@click.option("--limit", "-n", type=click.IntRange(1, 10000), default=50, show_default=True)
@_client_options
@handle_errors
def list_(client: Client, status: str | None, workflow_type: str | None, limit: int,
          as_json: bool) -> None:
    """List workflows, most recently updated first."""
    rows = client.list(status, workflow_type, limit)
    if as_json:
        emit_json([_info_dict(r) for r in rows])
        return
    table(f"{len(rows)} workflow(s)", ["id", "type", "status", "step", "updated"],
          [(r.id, r.workflow_type, r.status, r.current_step or "-",
            r.updated_at.strftime("%Y-%m-%d %H:%M:%S") if r.updated_at else "") for r in rows])


@click.command()
@click.argument("workflow_id")
@click.option("--input", "-i", "user_input", default=None,
              help="The input as JSON, or @file.json.")
@click.option("--wait", "wait_seconds", type=float, default=None)
@_client_options
@handle_errors
def resume(client: Client, workflow_id: str, user_input: str | None,
           wait_seconds: float | None, as_json: bool) -> None:
    """Give a waiting workflow its input (validated by the step's input_model)."""
    client.resume(workflow_id, _json_arg(user_input, "--input"))
    if wait_seconds is not None:
        _wait_and_print(client, workflow_id, wait_seconds, as_json)
    elif as_json:
        emit_json({"id": workflow_id, "resumed": True})
    else:
        console.print(f"resumed {workflow_id}")


@click.command()
@click.argument("workflow_id")
@click.option("--from-step", default=None, help="Step to run from [default: the failed one].")
@_client_options
@handle_errors
def retry(client: Client, workflow_id: str, from_step: str | None, as_json: bool) -> None:
    """Run a FAILED or CANCELLED workflow again from the failed (or a given) step."""
    client.retry(workflow_id, from_step)
    if as_json:
        emit_json({"id": workflow_id, "retried": True, "from_step": from_step})
    else:
        console.print(f"retrying {workflow_id}" + (f" from {from_step}" if from_step else ""))


@click.command()
@click.argument("workflow_id")
@click.option("--reason", "-r", default="cancelled by operator", show_default=True)
@_client_options
@handle_errors
def cancel(client: Client, workflow_id: str, reason: str, as_json: bool) -> None:
    """Cancel a workflow that has not finished."""
    client.cancel(workflow_id, reason)
    if as_json:
        emit_json({"id": workflow_id, "cancelled": True})
    else:
        console.print(f"cancelled {workflow_id}")


@click.command()
@click.argument("workflow_id")
@_client_options
@handle_errors
def logs(client: Client, workflow_id: str, as_json: bool) -> None:
    """The step history of a workflow: every transition, attempt, duration and error."""
    rows = client.history(workflow_id)
    if as_json:
        emit_json([{"step": h.step, "status": h.status, "attempt": h.attempt,
                    "version": h.version, "duration_ms": h.duration_ms, "error": h.error,
                    "detail": h.detail, "at": h.created_at} for h in rows])
        return
    table(f"History of {workflow_id}", ["at", "v", "step", "status", "attempt", "ms", "error"],
          [(h.created_at.strftime("%H:%M:%S.%f")[:-3] if h.created_at else "", h.version,
            h.step, h.status, h.attempt,
            f"{h.duration_ms:.1f}" if h.duration_ms is not None else "",
            (h.error or {}).get("message", "")) for h in rows])


@click.command(name="dead-letters")
@click.option("--limit", "-n", type=click.IntRange(1, 10000), default=20, show_default=True)
@_client_options
@handle_errors
def dead_letters(client: Client, limit: int, as_json: bool) -> None:
    """Messages the fleet refused (unknown type, invalid data, undecodable), newest first."""
    rows = client.dead_letters(limit)
    if as_json:
        emit_json(rows)
        return
    table("Refused messages", ["at", "task", "workflow", "reason"],
          [(r["created_at"].strftime("%Y-%m-%d %H:%M:%S"), r["task"], r["workflow_id"] or "-",
            r["reason"]) for r in rows])


@click.group()
def schedules() -> None:
    """CRON schedules stored by CRON_SCHEDULE steps (fired by every worker)."""


@schedules.command("list")
@_client_options
@handle_errors
def list_schedules(client: Client, as_json: bool) -> None:
    """List the schedules with their next and last run."""
    rows = client.schedules()
    if as_json:
        emit_json(rows)
        return

    def when(value: Any) -> str:
        return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"

    table("Schedules", ["name", "workflow", "cron", "next run", "last run", "runs"],
          [(r["name"], r["workflow_type"], r["cron_expression"], when(r["next_run_at"]),
            when(r["last_run_at"]), str(r["runs"])) for r in rows])


@schedules.command("remove")
@click.argument("name")
@_client_options
@handle_errors
def remove_schedule(client: Client, name: str, as_json: bool) -> None:
    """Remove schedule NAME: it fires no more (a CRON_SCHEDULE step that runs again
    stores it again)."""
    if not client.remove_schedule(name):
        fail(f"no schedule named '{name}' (see `ruvon-workers schedules list`)",
             EXIT_NOT_FOUND)
    if as_json:
        emit_json({"removed": name})
    else:
        click.echo(f"removed schedule {name}")
