from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ruvon_workers.persistence import MemoryPersistenceProvider, PostgresPersistenceProvider
from ruvon_workers.persistence.base import PersistenceProvider
from ruvon_workers.persistence.postgres import BlockingPostgresPersistenceProvider


@pytest.fixture(params=["memory", "postgres", "postgres-blocking"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PersistenceProvider]:
    """Every store the project has; the PostgreSQL ones each on a fresh database. A new
    store joins the contract by being added here."""
    if request.param == "memory":
        yield MemoryPersistenceProvider()
        return
    url = request.getfixturevalue("database_url")
    kind = (BlockingPostgresPersistenceProvider if request.param == "postgres-blocking"
            else PostgresPersistenceProvider)
    provider = kind(url)
    await provider.initialize()
    yield provider
    await provider.close()
