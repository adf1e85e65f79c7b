"""``ruvon-workers db migrate|status``."""

from __future__ import annotations

import click
import psycopg

from .. import settings
from ..persistence import migrate as migrations
from .output import EXIT_UNAVAILABLE, console, emit_json, fail, handle_errors, table

db_url_option = click.option("--database-url", envvar=["DATABASE_URL", "RUVON_DB_URL"],
                             help="PostgreSQL URL [env: DATABASE_URL or RUVON_DB_URL].")


@click.group()
def db() -> None:
    """Database schema: apply migrations, show their status."""


@db.command()
@db_url_option
@handle_errors
def migrate(database_url: str | None) -> None:
    """Apply pending schema migrations (safe to run from several pods at once)."""
    url = settings.database_url(database_url)
    assert url is not None
    try:
        applied = migrations.migrate(url)
    except psycopg.OperationalError as exc:
        fail(f"cannot reach PostgreSQL: {exc}".strip(), EXIT_UNAVAILABLE)
    if not applied:
        console.print("Schema is up to date.")
    for m in applied:
        console.print(f"applied {m.number:04d}_{m.name}")


@db.command()
@db_url_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def status(database_url: str | None, as_json: bool) -> None:
    """Show which migrations are applied; exit 1 if any is pending."""
    url = settings.database_url(database_url)
    assert url is not None
    try:
        rows = migrations.status(url)
    except psycopg.OperationalError as exc:
        fail(f"cannot reach PostgreSQL: {exc}".strip(), EXIT_UNAVAILABLE)
    if as_json:
        emit_json([{"number": r.number, "name": r.name, "applied": r.applied} for r in rows])
    else:
        table("Migrations", ["number", "name", "applied"],
              [(f"{r.number:04d}", r.name, "yes" if r.applied else "PENDING") for r in rows])
    if not all(r.applied for r in rows):
        raise SystemExit(1)
