"""SQL files: the current schema, named queries and numbered migrations (PostgreSQL);
``sqlite/`` holds the SQLite store's schema and named queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _named(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


@cache
def queries() -> dict[str, str]:
    """Named queries from ``queries.sql``."""
    return _named(_read("queries.sql"))


def query(name: str) -> str:
    return queries()[name]


def schema() -> str:
    return _read("schema.sql")


@cache
def sqlite_queries() -> dict[str, str]:
    """The SQLite store's named queries, from ``sqlite/queries.sql``."""
    return _named(_read("sqlite/queries.sql"))


def sqlite_query(name: str) -> str:
    return sqlite_queries()[name]


def sqlite_schema() -> str:
    """The SQLite store's schema (``sqlite/schema.sql``), every statement idempotent."""
    return _read("sqlite/schema.sql")


def sqlite_scoped_keys() -> str:
    """The one-time upgrade of a SQLite file whose idempotency keys are not yet scoped by
    workflow type (``sqlite/scoped_keys.sql``)."""
    return _read("sqlite/scoped_keys.sql")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    """Numbered migrations, in order (``NNNN_name.sql``)."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return tuple(sorted(found, key=lambda m: m.number))
