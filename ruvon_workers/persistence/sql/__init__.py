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


# First line of a migration that must not run in a transaction (CREATE INDEX
# CONCURRENTLY): its statements are run one by one, each committed on its own.
_NO_TRANSACTION = re.compile(r"^--\s*ruvon:\s*no-transaction\s*$")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str
    transactional: bool = True

    def statements(self) -> list[str]:
        """The file's statements, comments left out, in order."""
        return split_statements(self.sql)


def split_statements(text: str) -> list[str]:
    """Split SQL on the semicolons outside quotes and ``--`` comments. Meant for the plain
    DDL of a no-transaction migration: a dollar-quoted body is refused."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch in "'\"":
            end = text.find(ch, i + 1)
            while end >= 0 and text.startswith(ch * 2, end):
                end = text.find(ch, end + 2)
            if end < 0:
                raise ValueError(f"unterminated {ch} quote in migration SQL")
            current.append(text[i:end + 1])
            i = end + 1
            continue
        if ch == "$" and re.match(r"\$\w*\$", text[i:]):
            raise ValueError("a no-transaction migration cannot hold dollar-quoted bodies")
        if ch == ";":
            statement = "".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        else:
            current.append(ch)
        i += 1
    statement = "".join(current).strip()
    if statement:
        statements.append(statement)
    return statements


@cache
def migrations() -> tuple[Migration, ...]:
    """Numbered migrations, in order (``NNNN_name.sql``). A file whose first line is
    ``-- ruvon: no-transaction`` runs outside a transaction."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if match:
            text = entry.read_text(encoding="utf-8")
            first = text.split("\n", 1)[0].strip()
            found.append(Migration(int(match[1]), match[2], text,
                                   transactional=not _NO_TRANSACTION.match(first)))
    return tuple(sorted(found, key=lambda m: m.number))
