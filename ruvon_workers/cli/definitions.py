"""``ruvon-workers validate``."""

from __future__ import annotations

from pathlib import Path

import click

from ..definitions import load_registry
from ..errors import DefinitionError
from .output import EXIT_INVALID, console, emit_json, err_console


@click.command()
@click.argument("registry", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(registry: Path, as_json: bool) -> None:
    """Check a workflow registry and every workflow file it names.

    Prints every problem found (file, line, step, field), not just the first.
    """
    try:
        loaded = load_registry(registry)
    except DefinitionError as exc:
        if as_json:
            emit_json({"valid": False, "problems": [
                {"file": i.file, "line": i.line, "step": i.step, "field": i.field,
                 "message": i.message} for i in exc.issues]})
        else:
            err_console.print(f"[bold red]{len(exc.issues)} problem(s)[/] in {registry}:")
            for issue in exc.issues:
                err_console.print(f"  - {issue}", soft_wrap=True)
        raise SystemExit(EXIT_INVALID) from None
    if as_json:
        emit_json({"valid": True, "workflows": {
            d.workflow_type: [s.name for s in d.steps] for d in loaded}})
        return
    for defn in loaded:
        console.print(f"[green]ok[/] {defn.workflow_type} v{defn.workflow_version}: "
                      f"{len(defn.steps)} steps ({defn.source_file})")
