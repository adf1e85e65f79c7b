"""A producer's idempotency key in the engine's ``ruvon:`` namespace is refused by the
client and the CLI at once, naming the field: nothing is stored, no broker is needed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ruvon_workers import AsyncClient, Client
from ruvon_workers.errors import InvalidStateError

from ..helpers import FLEET_REGISTRY

KEY = "ruvon:child:7a3c1a8e-7d1f-4d55-9f1e-1d1a1d1a1d1a:Spawn:0"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)


def test_the_client_refuses_a_reserved_key(database_url: str) -> None:
    with Client(database_url, broker_url=None, registry=FLEET_REGISTRY) as client:
        with pytest.raises(InvalidStateError, match=r"^idempotency_key: 'ruvon:child:"):
            client.start("Ticked", {}, idempotency_key=KEY)
        assert client.list() == []


async def test_the_async_client_refuses_a_reserved_key(database_url: str) -> None:
    async with AsyncClient(database_url, registry=FLEET_REGISTRY) as client:
        with pytest.raises(ValueError, match=r"idempotency_key: .* reserved"):
            await client.start("Ticked", {}, idempotency_key=KEY)
        assert await client.list() == []


def test_the_cli_refuses_a_reserved_key(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CELERY_BROKER_URL", "TEST_REDIS_URL", "REDIS_URL")}
    env.update(DATABASE_URL=database_url, RUVON_REGISTRY=str(FLEET_REGISTRY),
               PYTHONPATH=str(FLEET_REGISTRY.parents[3]))
    proc = subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", "start", "Ticked",
                           "--idempotency-key", KEY], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "idempotency_key: 'ruvon:child:" in proc.stderr and "reserved" in proc.stderr
    assert "Traceback" not in proc.stderr and "CELERY_BROKER_URL" not in proc.stderr
