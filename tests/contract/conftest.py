from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ruvon_workers.persistence import (
    MemoryPersistenceProvider,
    PostgresPersistenceProvider,
    SQLitePersistenceProvider,
)
from ruvon_workers.persistence.base import PersistenceProvider
from ruvon_workers.persistence.postgres import BlockingPostgresPersistenceProvider


@pytest.fixture(params=["memory", "sqlite", "sqlite-file", "postgres", "postgres-blocking"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PersistenceProvider]:
    """Every store the project has; the PostgreSQL ones each on a fresh database, SQLite
    in memory and in a file of its own. A new store joins the contract by being added
    here."""
    if request.param == "memory":
        yield MemoryPersistenceProvider()
        return
    provider: SQLitePersistenceProvider | PostgresPersistenceProvider
    if request.param == "sqlite":
        provider = SQLitePersistenceProvider(":memory:")
    elif request.param == "sqlite-file":
        provider = SQLitePersistenceProvider(request.getfixturevalue("tmp_path") / "store.db")
    else:
        url = request.getfixturevalue("database_url")
        kind = (BlockingPostgresPersistenceProvider if request.param == "postgres-blocking"
                else PostgresPersistenceProvider)
        provider = kind(url)
    await provider.initialize()
    yield provider
    await provider.close()
