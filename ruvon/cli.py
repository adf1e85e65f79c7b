"""The ``ruvon`` command: Ruvon's CLI over Ruvon Workers.

Exit codes are Ruvon's: 0, 1 for every handled error, 2 for a usage error. ``run`` and
``validate`` need no server; the other commands use the database alone (``--db-url``,
``DATABASE_URL``, or the configured store) and run steps in this process
(``cli_operate``). The fleet's own commands stay on ``ruvon-workers``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from ruvon_workers.cli.output import status_option
from ruvon_workers.definitions import Registry, load_registry, load_workflow_file
from ruvon_workers.definitions.models import StepType, WorkflowDefinition
from ruvon_workers.errors import DefinitionError, RuvonError
from ruvon_workers.utils.loop import install_uvloop

T = TypeVar("T")
EXIT_ERROR = 1


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def _handled(fn: Callable[..., T]) -> Callable[..., T]:
    """Project errors (and bad files) become one line on stderr and exit code 1."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except (RuvonError, OSError, ValueError) as exc:
            _fail(str(exc))
            raise  # unreachable: _fail exits

    return wrapper


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _json_object(value: str | None, what: str) -> dict[str, Any]:
    if not value:
        return {}
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object")
    return data


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """Ruvon workflows, served by Ruvon Workers."""


# -- validate -------------------------------------------------------------------------------

def _load_any(path: Path) -> Registry:
    """A registry file, or one workflow file as a registry of its own."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(doc, dict) and "workflows" in doc:
        return load_registry(path)
    defn = load_workflow_file(path)
    assert defn is not None  # a problem raised DefinitionError
    return Registry(path, {defn.workflow_type: defn})


def mermaid(defn: WorkflowDefinition) -> str:
    """The steps and routes of ``defn`` as a Mermaid flowchart."""
    lines = ["flowchart TD"]
    ids = {step.name: f"s{i}" for i, step in enumerate(defn.all_steps)}
    for step in defn.all_steps:
        shape = ("{", "}") if step.type is StepType.DECISION or defn.routes.get(step.name) \
            else ("[", "]")
        lines.append(f'    {ids[step.name]}{shape[0]}"{step.name}<br/>{step.type.value}"'
                     f"{shape[1]}")
    for step in defn.steps:
        routes = defn.routes.get(step.name)
        if routes:
            for condition, target in routes:
                label = condition.source.replace('"', "'") if condition else "default"
                lines.append(f'    {ids[step.name]} -->|"{label}"| {ids[target]}')
        else:
            after = defn.step_after(step.name)
            if after is not None:
                lines.append(f"    {ids[step.name]} --> {ids[after]}")
    return "\n".join(lines)


def _dot(defn: WorkflowDefinition) -> str:
    lines = [f'digraph "{defn.workflow_type}" {{']
    for step in defn.steps:
        routes = defn.routes.get(step.name)
        targets = [(t, c.source if c else "default") for c, t in routes] if routes else \
            [(a, "") for a in [defn.step_after(step.name)] if a]
        for target, label in targets:
            lines.append(f'  "{step.name}" -> "{target}" [label="{label}"];')
    return "\n".join([*lines, "}"])


@app.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Warnings count as problems too.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--graph", is_flag=True, help="Print the workflow as a diagram.")
@click.option("--graph-format", type=click.Choice(["mermaid", "dot", "text"]),
              default="mermaid", show_default=True)
def validate(file: Path, strict: bool, as_json: bool, graph: bool, graph_format: str) -> None:
    """Check a workflow file or a registry (every problem: file, line, step, field)."""
    try:
        registry = _load_any(file)
    except DefinitionError as exc:
        if as_json:
            click.echo(json.dumps({"valid": False, "errors": [str(i) for i in exc.issues]}))
        else:
            click.echo(f"Invalid: {file}", err=True)
            for issue in exc.issues:
                click.echo(f"  - {issue}", err=True)
        sys.exit(EXIT_ERROR)
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"cannot read {file}: {exc}")
    if as_json:
        click.echo(json.dumps({"valid": True, "workflows": {
            d.workflow_type: [s.name for s in d.steps] for d in registry}}))
    else:
        for defn in registry:
            click.echo(f"Valid: {defn.workflow_type} v{defn.workflow_version} "
                       f"({len(defn.steps)} steps)")
    if graph:
        for defn in registry:
            if graph_format == "mermaid":
                click.echo(mermaid(defn))
            elif graph_format == "dot":
                click.echo(_dot(defn))
            else:
                click.echo(" -> ".join(s.name for s in defn.steps))


# -- run ------------------------------------------------------------------------------------

@app.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-d", "--data", default="{}", show_default=True, help="Initial data (JSON).")
@click.option("--db", "db_path", default=None,
              help="Keep the run in this SQLite file (default: in memory).")
@_handled
def run(file: Path, data: str, db_path: str | None) -> None:
    """Run a workflow file in this process until it completes, fails or waits."""
    initial = _json_object(data, "--data")
    registry = _load_any(file)
    defn = next(iter(registry))
    sys.path.insert(0, str(file.resolve().parent))
    status = _run(_run_to_rest(registry, defn.workflow_type, initial, db_path))
    sys.exit(0 if status == "COMPLETED" else EXIT_ERROR)


async def _run_to_rest(registry: Registry, workflow_type: str, initial: dict[str, Any],
                       db_path: str | None) -> str:
    from ruvon_workers import WorkflowBuilder
    from ruvon_workers.execution import SyncExecutionProvider
    from ruvon_workers.persistence import MemoryPersistenceProvider

    store: Any = MemoryPersistenceProvider()
    if db_path:
        from ruvon_workers.persistence.sqlite import SQLitePersistenceProvider

        store = SQLitePersistenceProvider(db_path)
    await store.initialize()
    try:
        wf = await WorkflowBuilder(registry).create_workflow(
            workflow_type, initial, persistence_provider=store,
            execution_provider=SyncExecutionProvider())
        click.echo(f"Started {workflow_type} {wf.id}")
        try:
            while wf.status == "ACTIVE":
                await wf.next_step()
        except RuvonError as exc:
            click.echo(f"Step failed: {exc}", err=True)
        click.echo(f"Status: {wf.status}")
        click.echo(json.dumps(wf.record.state, indent=2, default=str))
        return str(wf.status)
    finally:
        await store.close()


# -- reading the database ---------------------------------------------------------------------

def _db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db-url", envvar=["DATABASE_URL", "RUVON_DB_URL"], default=None,
                        help="PostgreSQL URL or sqlite:///<file> [env: DATABASE_URL; "
                             "default: the configured store].")(fn)


def store_url(db_url: str | None) -> str:
    """The store to use: ``db_url`` (``--db-url``, ``DATABASE_URL``), else the configured
    one (``ruvon config set-persistence``)."""
    if db_url:
        return db_url
    persistence = _config().get("persistence") or {}
    provider = persistence.get("provider")
    if provider == "sqlite":
        path = persistence.get("db_path") or "~/.ruvon/workflows.db"
        return f"sqlite:///{Path(path).expanduser()}"
    if provider == "postgres" and persistence.get("db_url"):
        return str(persistence["db_url"])
    raise RuvonError("no database: pass --db-url, set DATABASE_URL, or choose one with "
                     "`ruvon config set-persistence sqlite` (the memory store keeps nothing "
                     "between commands)")


def is_sqlite(url: str) -> bool:
    """``sqlite:///<file>``, or a plain file path; anything else is a PostgreSQL URL or
    connection string."""
    return url.startswith("sqlite:") or ("://" not in url and "=" not in url)


async def _with_store(db_url: str | None, use: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    url = store_url(db_url)
    store: Any
    if not is_sqlite(url):
        from ruvon_workers.persistence import PostgresPersistenceProvider

        store = PostgresPersistenceProvider(url, pool_min_size=1, pool_max_size=2)
    else:
        from ruvon_workers.persistence.sqlite import SQLitePersistenceProvider

        store = SQLitePersistenceProvider(url.removeprefix("sqlite:///").removeprefix(
            "sqlite://"))
    await store.initialize()
    try:
        return await use(store)
    finally:
        await store.close()


def _record_dict(record: Any) -> dict[str, Any]:
    return {"id": record.id, "workflow_type": record.workflow_type,
            "status": str(record.status), "current_step": record.current_step,
            "state": record.state, "error": record.error,
            "created_at": record.created_at.isoformat() if record.created_at else None,
            "updated_at": record.updated_at.isoformat() if record.updated_at else None}


@app.command(name="list")
@click.option("--status", default=None, callback=status_option)
@click.option("--type", "workflow_type", default=None)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("-v", "--verbose", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_handled
def list_(status: str | None, workflow_type: str | None, limit: int, verbose: bool,
          as_json: bool, db_url: str | None) -> None:
    """List workflows, newest first."""
    records = _run(_with_store(db_url, lambda s: s.list_workflows(
        status=status, workflow_type=workflow_type, limit=limit)))
    if as_json:
        click.echo(json.dumps([_record_dict(r) for r in records], default=str))
        return
    for r in records:
        click.echo(f"{r.id}  {r.workflow_type:<24} {r.status:<22} {r.current_step or '-'}")


@app.command()
@click.argument("workflow_id")
@click.option("--state", "with_state", is_flag=True, help="Also print the state.")
@click.option("--logs", "with_logs", is_flag=True, help="Also print the step history.")
@click.option("-v", "--verbose", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_handled
def show(workflow_id: str, with_state: bool, with_logs: bool, verbose: bool, as_json: bool,
         db_url: str | None) -> None:
    """Show one workflow."""
    async def read(store: Any) -> tuple[Any, list[Any]]:
        record = await store.load_workflow(workflow_id)
        if record is None:
            raise RuvonError(f"workflow {workflow_id} not found")
        return record, (await store.history(workflow_id) if with_logs else [])

    record, history = _run(_with_store(db_url, read))
    data = _record_dict(record)
    if with_logs:
        data["logs"] = [_entry(h) for h in history]
    if as_json:
        click.echo(json.dumps(data, default=str))
        return
    click.echo(f"{record.id}  {record.workflow_type}  {record.status}  "
               f"at {record.current_step or '-'}")
    if record.error:
        click.echo(f"error: {record.error.get('message')}")
    if with_state or verbose:
        click.echo(json.dumps(record.state, indent=2, default=str))
    for entry in data.get("logs", []):
        click.echo(f"  {entry['step']}: {entry['status']}")


def _entry(h: Any) -> dict[str, Any]:
    return {"step": h.step, "status": str(h.status), "attempt": h.attempt,
            "duration_ms": h.duration_ms, "error": h.error,
            "at": h.created_at.isoformat() if h.created_at else None}


@app.command()
@click.argument("workflow_id")
@click.option("--step", default=None, help="Only this step.")
@click.option("--level", default=None, help="ERROR: only failures.")
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_handled
def logs(workflow_id: str, step: str | None, level: str | None, limit: int, as_json: bool,
         db_url: str | None) -> None:
    """A workflow's step history."""
    async def read(store: Any) -> list[Any]:
        if await store.load_workflow(workflow_id) is None:
            raise RuvonError(f"workflow {workflow_id} not found")
        return list(await store.history(workflow_id))

    entries = [_entry(h) for h in _run(_with_store(db_url, read))]
    if step:
        entries = [e for e in entries if e["step"] == step]
    if level and level.upper() == "ERROR":
        entries = [e for e in entries if e["error"]]
    entries = entries[-limit:]
    if as_json:
        click.echo(json.dumps(entries, default=str))
        return
    for e in entries:
        message = f" {(e['error'] or {}).get('message')}" if e["error"] else ""
        click.echo(f"{e['at'] or '-'}  {e['step'] or '-':<24} {e['status']}{message}")


# -- config ---------------------------------------------------------------------------------

def config_path() -> Path:
    """``$RUVON_CONFIG_DIR/config.yaml``, else ``~/.ruvon/config.yaml``."""
    base = os.getenv("RUVON_CONFIG_DIR")
    return (Path(base) if base else Path.home() / ".ruvon") / "config.yaml"


DEFAULT_CONFIG: dict[str, Any] = {
    "persistence": {"provider": "memory"},
    "execution": {"provider": "sync"},
    "observability": {"provider": "logging"},
    "defaults": {"auto_execute": False, "interactive": True, "json_output": False},
}


@app.group()
def config() -> None:
    """Show where the CLI's configuration lives and what it holds."""


@config.command(name="path")
def config_path_command() -> None:
    """Print the configuration file's path."""
    click.echo(str(config_path()))


def _stored_config() -> dict[str, Any]:
    path = config_path()
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    if loaded is not None and not isinstance(loaded, dict):
        raise RuvonError(f"{path}: expected a mapping (fix it, or `ruvon config reset`)")
    return loaded or {}


def _config() -> dict[str, Any]:
    """The configuration: the file over the defaults."""
    loaded = _stored_config()
    return {key: {**value, **(loaded.get(key) or {})} for key, value in DEFAULT_CONFIG.items()}


def _save_config(section: str, values: dict[str, Any]) -> None:
    data = _stored_config()
    data[section] = {**(data.get(section) or {}), **values}
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=True), encoding="utf-8")
    click.echo(f"{section}: {json.dumps(data[section])} ({path})")


@config.command(name="show")
@click.option("--json", "as_json", is_flag=True)
@_handled
def config_show(as_json: bool) -> None:
    """Print the configuration (the defaults where the file sets nothing)."""
    click.echo(json.dumps(_config(), indent=None if as_json else 2))


@config.command(name="set-persistence")
@click.argument("provider", type=click.Choice(["memory", "sqlite", "postgres"]))
@click.option("--db-path", default=None, help="sqlite: the file (default "
                                              "~/.ruvon/workflows.db).")
@click.option("--db-url", "url", default=None, help="postgres: the database URL.")
@_handled
def config_set_persistence(provider: str, db_path: str | None, url: str | None) -> None:
    """Where the commands keep workflows by default."""
    if provider == "postgres" and not url:
        raise RuvonError("postgres needs --db-url postgresql://...")
    values: dict[str, Any] = {"provider": provider}
    if db_path:
        values["db_path"] = db_path
    if url:
        values["db_url"] = url
    _save_config("persistence", values)


@config.command(name="set-execution")
@click.argument("provider", type=click.Choice(["sync", "thread_pool"]))
@_handled
def config_set_execution(provider: str) -> None:
    """How steps run in this process (both run PARALLEL branches at once)."""
    _save_config("execution", {"provider": provider})


@config.command(name="set-default")
@click.argument("key", type=click.Choice(["auto_execute", "interactive", "json_output"]))
@click.argument("value", type=click.BOOL)
@_handled
def config_set_default(key: str, value: bool) -> None:
    """Set one of the defaults (true or false)."""
    _save_config("defaults", {key: value})


@config.command(name="reset")
@click.option("-y", "--yes", is_flag=True, help="Do not ask.")
@_handled
def config_reset(yes: bool) -> None:
    """Remove the configuration file (the defaults apply again)."""
    path = config_path()
    if not path.exists():
        click.echo("nothing to reset: the defaults apply")
        return
    if not yes:
        click.confirm(f"Remove {path}?", abort=True)
    path.unlink()
    click.echo(f"removed {path}")


from . import cli_operate  # noqa: E402, F401  (registers start, resume, retry, cancel, ...)


def main() -> None:
    install_uvloop()
    app(prog_name="ruvon")


if __name__ == "__main__":
    main()
