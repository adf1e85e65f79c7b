"""The ``ruvon`` commands that act on stored workflows: ``start``, ``resume``, ``retry``,
``cancel``, ``db`` and ``scan-zombies``.

They run steps in this process, as Ruvon's CLI does (``--auto``), on the store named by
``--db-url`` (PostgreSQL, or ``sqlite:///path``), ``DATABASE_URL``, or the configuration
(``ruvon config set-persistence``). A run's definition comes from ``--config`` (a workflow
file or a registry), ``RUVON_REGISTRY``, or the snapshot stored when the run started, so a
command needs nothing but the database for a run it did not start. Runs on a fleet are
better moved with ``ruvon-workers resume/retry/cancel``, which hand the next step to the
workers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ruvon_workers.definitions import Registry, load_registry
from ruvon_workers.definitions.loader import definition_from_snapshot
from ruvon_workers.definitions.models import WorkflowDefinition
from ruvon_workers.engine.machine import Cancel, Resume, Retry
from ruvon_workers.engine.records import Status, WorkflowRecord
from ruvon_workers.errors import RuvonError, WorkflowFailedException, WorkflowNotFound

from .cli import _db_option, _handled, _json_object, _load_any, _run, _with_store, app

_ZOMBIE_STATUSES = (Status.ACTIVE, Status.PENDING_ASYNC)


def _config_option(fn: Any) -> Any:
    return click.option(
        "--config", "config_file", default=None,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The workflow file (or registry) that defines the run's type; default: "
             "RUVON_REGISTRY, else the definition stored with the run.")(fn)


def _input(value: str | None, file: Path | None, what: str) -> dict[str, Any]:
    if file is not None:
        return _json_object(file.read_text(encoding="utf-8"), f"{what} file {file}")
    return _json_object(value, what)


def _registry(config_file: Path | None) -> Registry | None:
    for path in (config_file, os.getenv("RUVON_REGISTRY")):
        if path:
            here = Path(path).resolve().parent
            if str(here) not in sys.path:
                sys.path.insert(0, str(here))
            return _load_any(Path(path)) if isinstance(path, Path) else load_registry(path)
    return None


async def _definition(store: Any, record: WorkflowRecord,
                      registry: Registry | None) -> Registry:
    """A registry holding ``record``'s type: the given one, else the stored snapshot."""
    if registry is not None and record.workflow_type in registry:
        return registry
    fingerprint = record.runtime.definition
    snapshot = await store.load_definition(fingerprint) if fingerprint else None
    if snapshot is None:
        raise RuvonError(f"workflow type '{record.workflow_type}' is not defined here and its "
                         "definition was not stored with the run: pass --config <workflow "
                         "file or registry>, or set RUVON_REGISTRY")
    defn: WorkflowDefinition = definition_from_snapshot(
        snapshot, f"<definition of {record.workflow_type} stored with run {record.id}>")
    return Registry(Path(defn.source_file), {defn.workflow_type: defn})


async def _load(store: Any, workflow_id: str, config_file: Path | None) -> Any:
    from ruvon_workers import WorkflowBuilder
    from ruvon_workers.execution import SyncExecutionProvider

    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the steps of a program run from its folder
    record = await store.load_workflow(workflow_id)
    if record is None:
        raise WorkflowNotFound(workflow_id)
    registry = await _definition(store, record, _registry(config_file))
    return await WorkflowBuilder(registry).load_workflow(
        workflow_id, persistence_provider=store, execution_provider=SyncExecutionProvider())


async def _drive(wf: Any, user_input: dict[str, Any] | None = None) -> None:
    """Run steps here until the run ends or waits; the first call gets ``user_input``."""
    while True:
        try:
            await wf.next_step(user_input)
        except WorkflowFailedException as exc:
            click.echo(f"Step failed: {exc}", err=True)
            return
        user_input = None
        if wf.status != Status.ACTIVE:
            return


def _report(record: WorkflowRecord, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"id": record.id, "workflow_type": record.workflow_type,
                               "status": str(record.status),
                               "current_step": record.current_step, "state": record.state,
                               "error": record.error}, default=str))
        return
    click.echo(f"{record.id}  {record.workflow_type}  {record.status}  "
               f"at {record.current_step or '-'}")
    if record.error:
        click.echo(f"error: {record.error.get('message')}")


async def _apply(store: Any, workflow_id: str, config_file: Path | None,
                 event: Resume | Retry | Cancel) -> WorkflowRecord:
    from ruvon_workers.execution.operations import apply_event, cancel_tree

    registry = _registry(config_file)

    async def definition(record: WorkflowRecord) -> WorkflowDefinition:
        return (await _definition(store, record, registry)).get(record.workflow_type)

    if isinstance(event, Cancel):
        async def ended(record: WorkflowRecord) -> None:
            return None

        return await cancel_tree(store, definition, workflow_id, event.reason, ended)
    record, _ = await apply_event(store, definition, workflow_id, event)
    return record


@app.command()
@click.argument("workflow_type")
@click.option("-d", "--data", default=None, help="Initial data (JSON).")
@click.option("--data-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Initial data from a JSON file.")
@_config_option
@click.option("--auto", is_flag=True, help="Run its steps here until it ends or waits.")
@click.option("--dry-run", is_flag=True, help="Check the type and data; store nothing.")
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_handled
def start(workflow_type: str, data: str | None, data_file: Path | None,
          config_file: Path | None, auto: bool, dry_run: bool, as_json: bool,
          db_url: str | None) -> None:
    """Start a workflow of WORKFLOW_TYPE (stored; with --auto its steps run here)."""
    from ruvon_workers import WorkflowBuilder
    from ruvon_workers.execution import SyncExecutionProvider

    initial = _input(data, data_file, "--data")
    registry = _registry(config_file)
    if registry is None:
        raise RuvonError("which workflows? pass --config <workflow file or registry>, or "
                         "set RUVON_REGISTRY")
    builder = WorkflowBuilder(registry)
    if dry_run:
        record = builder.new_record(workflow_type, initial)
        click.echo(f"would start {workflow_type} at step {record.current_step} "
                   f"({record.status}) with {json.dumps(record.state, default=str)}")
        return

    async def go(store: Any) -> WorkflowRecord:
        wf = await builder.create_workflow(workflow_type, initial, persistence_provider=store,
                                           execution_provider=SyncExecutionProvider())
        if auto:
            await _drive(wf)
        return wf.record

    _report(_run(_with_store(db_url, go)), as_json)


@app.command()
@click.argument("workflow_id")
@click.option("-i", "--input", "input_", default=None, help="The input (JSON).")
@click.option("--input-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="The input from a JSON file.")
@_config_option
@click.option("--auto", is_flag=True, help="Run its steps here until it ends or waits.")
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_handled
def resume(workflow_id: str, input_: str | None, input_file: Path | None,
           config_file: Path | None, auto: bool, as_json: bool, db_url: str | None) -> None:
    """Give a waiting workflow its input (checked by the step's input_model); with --auto
    its steps run here."""
    user_input = _input(input_, input_file, "--input")

    async def go(store: Any) -> WorkflowRecord | None:
        record = await store.load_workflow(workflow_id)
        if record is None:
            raise WorkflowNotFound(workflow_id)
        if record.status not in (Status.WAITING_HUMAN, Status.ACTIVE):
            click.echo(f"Warning: workflow {workflow_id} is {record.status}, not waiting: "
                       "nothing to resume", err=True)
            return None
        if not auto:
            if record.status == Status.ACTIVE:
                return record  # nothing waits: --auto runs its steps
            return await _apply(store, workflow_id, config_file, Resume(user_input))
        wf = await _load(store, workflow_id, config_file)
        await _drive(wf, user_input)
        return wf.record

    record = _run(_with_store(db_url, go))
    if record is not None:
        _report(record, as_json)


@app.command()
@click.argument("workflow_id")
@click.option("--from-step", default=None, help="Run again from this step.")
@_config_option
@click.option("--auto", is_flag=True, help="Run its steps here until it ends or waits.")
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_handled
def retry(workflow_id: str, from_step: str | None, config_file: Path | None, auto: bool,
          as_json: bool, db_url: str | None) -> None:
    """Run a FAILED (or CANCELLED, FAILED_CHILD_WORKFLOW, FAILED_WORKER_CRASH) workflow
    again from its failed step, or from --from-step."""
    async def go(store: Any) -> WorkflowRecord:
        record = await _apply(store, workflow_id, config_file, Retry(from_step))
        if auto and record.status == Status.ACTIVE:
            wf = await _load(store, workflow_id, config_file)
            await _drive(wf)
            return wf.record
        return record

    _report(_run(_with_store(db_url, go)), as_json)


@app.command()
@click.argument("workflow_id")
@click.option("--reason", default="cancelled from the command line", show_default=True)
@click.option("--force", is_flag=True, help="Accepted for Ruvon's scripts; nothing is asked.")
@_config_option
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_handled
def cancel(workflow_id: str, reason: str, force: bool, config_file: Path | None,
           as_json: bool, db_url: str | None) -> None:
    """Cancel a workflow (and the sub-workflow it waits for); its state is kept."""
    async def go(store: Any) -> WorkflowRecord | None:
        record = await store.load_workflow(workflow_id)
        if record is None:
            raise WorkflowNotFound(workflow_id)
        if Status(record.status).is_terminal:
            click.echo(f"Warning: workflow {workflow_id} already ended {record.status}",
                       err=True)
            return None
        return await _apply(store, workflow_id, config_file, Cancel(reason))

    record = _run(_with_store(db_url, go))
    if record is not None:
        _report(record, as_json)


# -- the database -----------------------------------------------------------------------------

@app.group()
def db() -> None:
    """Create the schema and look at the database."""


def _is_postgres(url: str) -> bool:
    from .cli import is_sqlite

    return not is_sqlite(url)


@db.command(name="init")
@_db_option
@_handled
def db_init(db_url: str | None) -> None:
    """Create (or bring up to date) the schema."""
    _migrate(db_url)


@db.command(name="migrate")
@click.option("--dry-run", is_flag=True, help="Only list the migrations still to apply.")
@_db_option
@_handled
def db_migrate(dry_run: bool, db_url: str | None) -> None:
    """Apply the migrations still pending."""
    if dry_run:
        _status(db_url, pending_only=True)
        return
    _migrate(db_url)


def _migrate(db_url: str | None) -> None:
    from .cli import store_url

    url = store_url(db_url)
    if _is_postgres(url):
        from ruvon_workers.persistence.migrate import migrate

        applied = migrate(url)
        click.echo(f"applied {len(applied)} migration(s)" if applied else "schema up to date")
        return

    async def touch(store: Any) -> None:
        return None  # opening a SQLite file creates its schema

    _run(_with_store(url, touch))
    click.echo(f"schema ready in {url}")


def _status(db_url: str | None, pending_only: bool = False) -> None:
    from .cli import store_url

    url = store_url(db_url)
    if not _is_postgres(url):
        click.echo("a SQLite file takes its schema when it is opened: nothing to migrate")
        return
    from ruvon_workers.persistence.migrate import status

    for m in status(url):
        if not (pending_only and m.applied):
            click.echo(f"{m.number:04d} {m.name:<32} {'applied' if m.applied else 'PENDING'}")


@db.command(name="status")
@_db_option
@_handled
def db_status(db_url: str | None) -> None:
    """Which migrations are applied."""
    _status(db_url)


@db.command(name="stats")
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_handled
def db_stats(as_json: bool, db_url: str | None) -> None:
    """How many workflows there are, by status."""
    async def read(store: Any) -> dict[str, int]:
        counts: dict[str, int] = await store.count_by_status()
        return counts

    counts = _run(_with_store(db_url, read))
    if as_json:
        click.echo(json.dumps({"total": sum(counts.values()), "by_status": counts}))
        return
    click.echo(f"{sum(counts.values())} workflow(s)")
    for name, n in sorted(counts.items()):
        click.echo(f"  {name:<24} {n}")


# -- zombies ----------------------------------------------------------------------------------

@app.command(name="scan-zombies")
@click.option("--threshold", default=120, show_default=True, type=click.IntRange(1),
              help="Seconds without progress before a run counts as stuck.")
@click.option("--fix", is_flag=True, help="Mark them FAILED_WORKER_CRASH (retry brings "
                                          "them back).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_handled
def scan_zombies(threshold: int, fix: bool, limit: int, as_json: bool,
                 db_url: str | None) -> None:
    """List runs stuck mid-step: ACTIVE or PENDING_ASYNC with no progress for --threshold
    seconds. On a fleet the sweep sends such a step again while any worker runs, so a run
    listed here has no worker to take it (or a step still running that long)."""
    async def scan(store: Any) -> list[WorkflowRecord]:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=threshold)
        stuck: list[WorkflowRecord] = []
        for status in _ZOMBIE_STATUSES:
            rows = await store.list_workflows(status=status, limit=limit)
            stuck += [r for r in rows if r.updated_at is not None and r.updated_at < cutoff]
        if fix:
            for record in stuck:
                await _mark_crashed(store, record, threshold)
        return stuck

    stuck = _run(_with_store(db_url, scan))
    if as_json:
        click.echo(json.dumps([{"id": r.id, "workflow_type": r.workflow_type,
                                "status": "FAILED_WORKER_CRASH" if fix else str(r.status),
                                "current_step": r.current_step,
                                "updated_at": r.updated_at.isoformat() if r.updated_at
                                else None} for r in stuck]))
        return
    click.echo(f"{len(stuck)} stuck run(s)" + (" marked FAILED_WORKER_CRASH" if fix and stuck
                                                else ""))
    for r in stuck:
        click.echo(f"  {r.id}  {r.workflow_type:<24} {r.status:<14} at {r.current_step}")


async def _mark_crashed(store: Any, record: WorkflowRecord, threshold: int) -> None:
    from ruvon_workers.engine.records import HistoryEntry, RecordUpdate, StepOutcome
    from ruvon_workers.errors import StaleStateError

    error = {"step": record.current_step, "type": "WorkerCrash",
             "message": f"no progress for {threshold} s (ruvon scan-zombies --fix)"}
    update = RecordUpdate.keep(record, status=Status.FAILED_WORKER_CRASH, error=error)
    try:
        await store.apply(record.id, record.version, update,
                          [HistoryEntry(record.current_step, StepOutcome.FAILED, error=error)])
    except StaleStateError:
        pass  # it moved after all: not a zombie
