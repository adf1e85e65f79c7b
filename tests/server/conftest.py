from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ruvon_workers import WorkflowBuilder
from ruvon_workers.client import AsyncClient
from ruvon_workers.errors import RuvonError
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.persistence import PostgresPersistenceProvider
from ruvon_workers.server import Role, TokenAuthenticator, create_app
from ruvon_workers.server.deps import ServerConfig

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "config" / "workflow_registry.yaml"

ADMIN = "admin-token-0123456789abcdef"
OPERATOR = "operator-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"
TOKENS = {ADMIN: Role.ADMIN, OPERATOR: Role.OPERATOR, READER: Role.READ_ONLY}
NAMES = {OPERATOR: "olga"}


def order(order_id: str, unit_price: float = 5.0, country: str = "DE") -> dict[str, Any]:
    return {"order_id": order_id, "customer_id": "c-1", "ship_to_country": country,
            "items": [{"sku": "book", "quantity": 1, "unit_price": unit_price}]}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(session_secret=b"s" * 32, flower_url="http://flower.example:5555",
                        grafana_url="http://grafana.example/d/ruvon")


@pytest.fixture
async def api(database_url: str, redis_url: str,
              server_config: ServerConfig) -> AsyncIterator[httpx.AsyncClient]:
    """The server's app over a fresh database and a Redis db of its own (the broker)."""
    client = AsyncClient(database_url, redis_url, REGISTRY)
    app = create_app(client, TokenAuthenticator(TOKENS, NAMES), server_config)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await client.close()


class InProcess:
    """Runs stored in the test's database, stepped in this process (no worker needed)."""

    def __init__(self, database_url: str):
        self.database_url = database_url

    async def run(self, data: dict[str, Any], key: str | None = None) -> str:
        store = PostgresPersistenceProvider(self.database_url)
        await store.initialize()
        try:
            wf = await WorkflowBuilder.from_registry(REGISTRY).create_workflow(
                "OrderProcessing", data, persistence_provider=store,
                execution_provider=SyncExecutionProvider(), idempotency_key=key)
            while wf.status == "ACTIVE":
                try:
                    await wf.next_step()
                except RuvonError:  # a run that fails raises; its row is what matters
                    break
            return str(wf.id)
        finally:
            await store.close()


@pytest.fixture
def runs(database_url: str) -> InProcess:
    return InProcess(database_url)
