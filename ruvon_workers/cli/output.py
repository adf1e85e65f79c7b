"""Shared CLI helpers: tables for people, JSON for scripts, exit codes that mean something."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..engine.records import Status
from ..errors import (
    DatabaseError,
    DefinitionError,
    InvalidStateError,
    InvalidTransition,
    RuvonError,
    UnknownWorkflowType,
    WorkflowNotFound,
)
from ..utils.serialization import serialize

# Piped output (scripts, logs, CI) is not folded at 80 columns.
_WIDTH = None if sys.stdout.isatty() else 200
# No emoji codes: user text such as an idempotency key (`ruvon:child:...`) prints as is.
console = Console(highlight=False, emoji=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, emoji=False,
                      width=None if sys.stderr.isatty() else 200)

# Exit codes: 0 success, 1 failure, 2 usage (click), then these.
EXIT_FAILED = 1
EXIT_NOT_FOUND = 3
EXIT_INVALID = 4
EXIT_CONFLICT = 5
EXIT_UNAVAILABLE = 6
EXIT_TIMEOUT = 7

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, WorkflowNotFound | UnknownWorkflowType):
        return EXIT_NOT_FOUND
    if isinstance(exc, InvalidStateError | DefinitionError):
        return EXIT_INVALID
    if isinstance(exc, InvalidTransition):
        return EXIT_CONFLICT
    if isinstance(exc, DatabaseError | ConnectionError | OSError):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(code)


def status_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A ``--status`` value as the stored name: any case, and the Ruvon docs' PAUSED or
    WAITING_HUMAN_INPUT for WAITING_HUMAN."""
    if value is None:
        return None
    try:
        return Status.parse(value).value
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def handle_errors(fn: F) -> F:
    """Turn project errors into a one-line message and a meaningful exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RuvonError as exc:
            fail(str(exc), exit_code_for(exc))

    return wrapper  # type: ignore[return-value]


def emit_json(data: Any) -> None:
    click.echo(serialize(data))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        t.add_column(column, overflow="fold", no_wrap=column in ("id", "status", "workflow"))
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)
