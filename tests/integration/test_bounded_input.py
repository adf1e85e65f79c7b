"""The producer client refuses initial data or input over ``RUVON_MAX_INPUT_BYTES`` at
once: nothing is stored or sent, and no broker is needed to be told."""

from __future__ import annotations

import pytest

from ruvon_workers import AsyncClient, Client, InputTooLarge
from ruvon_workers.errors import ConfigurationError
from ruvon_workers.utils.serialization import dumps_bytes

from ..helpers import FLEET_REGISTRY

MIB = 1024 * 1024


def _label_of_size(size: int) -> dict[str, str]:
    return {"label": "x" * (size - len(dumps_bytes({"label": ""})))}


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)


def test_the_client_refuses_data_over_1_mib_before_it_needs_a_broker(database_url: str) -> None:
    with Client(database_url, broker_url=None, registry=FLEET_REGISTRY) as client:
        with pytest.raises(InputTooLarge) as info:
            client.start("Ticked", _label_of_size(MIB + 1))
        assert str(info.value).startswith(
            "Initial data for 'Ticked': 1048577 bytes as JSON, more than the limit of "
            "1048576 bytes (RUVON_MAX_INPUT_BYTES)")
        with pytest.raises(InputTooLarge, match=r"Input for workflow 'w-1': 1048577 bytes"):
            client.resume("w-1", _label_of_size(MIB + 1))
        # Data within the limit gets as far as needing the broker: the refusal came first.
        with pytest.raises(ConfigurationError, match="No broker configured"):
            client.start("Ticked", _label_of_size(MIB))
        assert client.list() == [] and client.dead_letters() == []


async def test_the_async_client_follows_ruvon_max_input_bytes(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUVON_MAX_INPUT_BYTES", "64")
    async with AsyncClient(database_url, registry=FLEET_REGISTRY) as client:
        with pytest.raises(InputTooLarge, match=r"'Ticked': 65 bytes as JSON, more than "
                                                r"the limit of 64 bytes"):
            await client.start("Ticked", _label_of_size(65))
        with pytest.raises(InputTooLarge, match=r"Input for workflow 'w-1': 65 bytes"):
            await client.resume("w-1", _label_of_size(65))
        assert await client.list() == []
