"""``ruvon-workers server`` as a user runs it: a real process, driven with ``curl``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest

from ..helpers import free_port
from .conftest import REGISTRY, ROOT, order

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

TOKEN = "curl-admin-token-0123456789"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CELERY_BROKER_URL", "RUVON_API_TOKEN", "RUVON_API_TOKENS_FILE")}
    env.update(PYTHONPATH=str(ROOT), RUVON_REGISTRY=str(REGISTRY), **extra)
    return env


@pytest.fixture
def served(database_url: str, redis_url: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ruvon_workers.cli.main", "server", "--port", str(port)],
        env=_env(DATABASE_URL=database_url, CELERY_BROKER_URL=redis_url,
                 RUVON_API_TOKEN=TOKEN),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stdout.read() if proc.stdout else "") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _curl(*args: str) -> tuple[int, str]:
    done = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
                          capture_output=True, text=True, timeout=30, check=True)
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_start_over_http_with_curl(served: str, database_url: str) -> None:
    code, body = _curl("-X", "POST", f"{served}/api/v1/workflows",
                       "-H", f"Authorization: Bearer {TOKEN}",
                       "-H", "Content-Type: application/json",
                       "-d", json.dumps({"workflow_type": "OrderProcessing",
                                         "initial_data": order("curl-1"),
                                         "idempotency_key": "curl-1"}))
    assert code == 201, body
    workflow_id = json.loads(body)["id"]
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT workflow_type, idempotency_key, state->>'order_id' "
                           "FROM workflow_executions WHERE id = %s", (workflow_id,)).fetchone()
    assert row == ("OrderProcessing", "curl-1", "curl-1")
    code, body = _curl(f"{served}/api/v1/workflows/{workflow_id}",
                       "-H", f"Authorization: Bearer {TOKEN}")
    assert code == 200 and json.loads(body)["id"] == workflow_id
    code, _ = _curl(f"{served}/api/v1/workflows")
    assert code == 401
    code, body = _curl(f"{served}/readyz")
    assert code == 200 and json.loads(body) == {"status": "ready"}


def test_refuses_to_start_without_a_token(database_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruvon_workers.cli.main", "server", "--port", "1"],
        env=_env(DATABASE_URL=database_url), capture_output=True, text=True, timeout=60,
        check=False)
    assert done.returncode != 0
    assert "RUVON_API_TOKEN" in done.stderr and "RUVON_API_TOKENS_FILE" in done.stderr
    assert "Traceback" not in done.stderr
