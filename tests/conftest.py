from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ruvon_workers import WorkflowBuilder
from ruvon_workers.persistence import (
    MemoryPersistenceProvider,
    PostgresPersistenceProvider,
    SQLitePersistenceProvider,
)
from ruvon_workers.persistence import migrate as migrations
from ruvon_workers.utils.redis_urls import redis_client

from . import services

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "config" / "workflow_registry.yaml"
TEMPLATE_DB = f"ruvon_tpl_{os.getpid()}"

os.environ.setdefault("POSTGRES_POOL_MIN_SIZE", "1")
os.environ.setdefault("POSTGRES_POOL_MAX_SIZE", "8")


def _with_dbname(url: str, dbname: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in params.items() if v is not None})


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = services.postgres_admin_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    migrations.migrate(_with_dbname(url, TEMPLATE_DB))
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(TEMPLATE_DB)))


@pytest.fixture
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, migrated database for one test, cloned from a template."""
    name = f"ruvon_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(TEMPLATE_DB)))
    yield _with_dbname(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database with no schema at all."""
    name = f"ruvon_e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_dbname(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


_redis_dbs = itertools.cycle(range(1, 16))


@pytest.fixture(scope="session")
def redis_base() -> str:
    return services.redis_base_url()


@pytest.fixture
def redis_url(redis_base: str) -> Iterator[str]:
    """A Redis database of this test's own, flushed before and after."""

    url = services.with_db_number(redis_base, next(_redis_dbs))
    client = redis_client(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def builder() -> WorkflowBuilder:
    return WorkflowBuilder.from_registry(REGISTRY)


@pytest.fixture
async def pg_persistence(database_url: str) -> AsyncIterator[PostgresPersistenceProvider]:
    provider = PostgresPersistenceProvider(database_url)
    await provider.initialize()
    yield provider
    await provider.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def persistence(request: pytest.FixtureRequest):
    """Every store; SQLite in a file of its own, PostgreSQL on a fresh database."""
    if request.param == "memory":
        yield MemoryPersistenceProvider()
        return
    provider: SQLitePersistenceProvider | PostgresPersistenceProvider
    if request.param == "sqlite":
        provider = SQLitePersistenceProvider(request.getfixturevalue("tmp_path") / "store.db")
    else:
        provider = PostgresPersistenceProvider(request.getfixturevalue("database_url"))
    await provider.initialize()
    yield provider
    await provider.close()
