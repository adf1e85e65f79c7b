"""``ruvon-workers demo --serve``: after the example runs it prints the dashboard's URL
and a login token, serves the dashboard and the API, and stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from ..helpers import free_port
from .conftest import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_demo_serves_the_dashboard_until_ctrl_c(database_url: str, redis_url: str,
                                                tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RUVON_API_TOKEN"}
    env.update(DATABASE_URL=database_url, CELERY_BROKER_URL=redis_url, PYTHONPATH=str(ROOT),
               RUVON_DEFAULT_QUEUE=f"ruvon-{uuid.uuid4().hex[:8]}", RUVON_METRICS_PORT="0",
               COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ruvon_workers.cli.main", "demo", "--serve", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    lines: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 100
        while not any("Login token (admin): " in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        out = "".join(lines)
        assert "21 COMPLETED, 1 FAILED_ROLLED_BACK" in out
        assert f"Dashboard: http://127.0.0.1:{port}/ui/" in out
        found = re.search(r"Login token \(admin\): (\S+)", out)
        assert found
        token = found.group(1)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        listed = httpx.get(f"{base}/api/v1/workflows", params={"status": "COMPLETED",
                                                               "workflow_type": "OrderProcessing"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert listed.status_code == 200 and len(listed.json()["items"]) == 21
        with httpx.Client(base_url=base, timeout=10) as browser:
            signed_in = browser.post("/ui/login", data={"token": token})
            assert signed_in.status_code == 303
            assert "FAILED_ROLLED_BACK" in browser.get("/ui/").text
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
