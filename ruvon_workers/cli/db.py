"""``ruvon-workers db migrate|status|purge``."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

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


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(value: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m`` or ``3600s`` as a duration."""
    match = _AGE.match(value or "")
    if not match:
        raise click.BadParameter(f"{value!r}: give a number and a unit, e.g. 30d, 12h, 90m")
    return dt.timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2)])


@db.command()
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Remove what ended (or was recorded) longer ago than this: 30d, 12h, 90m.")
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1),
              help="Rows per statement (short statements never hold locks for long).")
@db_url_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def purge(older_than: str, dry_run: bool, batch: int, database_url: str | None,
          as_json: bool) -> None:
    """Remove ended workflows (with their history, fan-outs and branches) and dead
    letters older than --older-than. Running and waiting workflows are never touched."""
    from ..persistence import PostgresPersistenceProvider

    age = parse_age(older_than)
    url = settings.database_url(database_url)
    assert url is not None
    before = dt.datetime.now(dt.UTC) - age

    async def run() -> tuple[int, int]:
        store = PostgresPersistenceProvider(url, pool_min_size=1, pool_max_size=2)
        await store.initialize()
        try:
            return await store.purge(before, batch=batch, dry_run=dry_run)
        finally:
            await store.close()

    workflows, letters = asyncio.run(run())
    if as_json:
        emit_json({"dry_run": dry_run, "before": before.isoformat(), "workflows": workflows,
                   "dead_letters": letters})
        return
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {workflows} ended workflow(s) and {letters} dead letter(s) "
                  f"older than {older_than}")
