"""Real worker processes, started the way a user starts them (the CLI, as a subprocess)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ruvon_workers import Client
from ruvon_workers.persistence import migrate as migrations

ROOT = Path(__file__).resolve().parents[2]
FLEET_REGISTRY = ROOT / "tests" / "fixtures" / "fleet" / "workflow_registry.yaml"


class FleetWorker:
    """One `ruvon-workers worker` process (its own session, so its pool goes with it)."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str):
        self.heartbeat = Path(env["RUVON_HEARTBEAT_FILE"])
        self.heartbeat.unlink(missing_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "ab")
        cmd = [sys.executable, "-m", "ruvon_workers.cli.main", "worker", "--loglevel", "INFO",
               "--without-mingle", "--without-gossip", *args]
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> FleetWorker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.heartbeat.exists():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def kill9(self) -> None:
        """SIGKILL the worker and its pool processes (the session this test started)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        # Pool processes left behind by a kill are ours too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def fleet_env(database_url: str, redis_url: str, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    # A queue of this test's own: a stray worker elsewhere on the same Redis db (another
    # test session on this machine) cannot steal its messages.
    queue = f"ruvon-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RUVON_DEFAULT_QUEUE", queue)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "RUVON_REGISTRY": str(FLEET_REGISTRY),
        "RUVON_DEFAULT_QUEUE": queue,
        "RUVON_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
        "RUVON_METRICS_PORT": "0",
        "RUVON_TEST_MARKERS": str(tmp_path / "markers"),
        "POSTGRES_POOL_MIN_SIZE": "1",
        "POSTGRES_POOL_MAX_SIZE": "4",
        "PYTHONPATH": str(ROOT),
        # HTTP steps call servers the tests run on loopback.
        "RUVON_HTTP_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    (tmp_path / "markers").mkdir()
    return env


@pytest.fixture
def start_worker(fleet_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., FleetWorker]]:
    started: list[FleetWorker] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> FleetWorker:
        worker = FleetWorker({**fleet_env, **(env or {})},
                             tmp_path / f"worker-{len(started)}.log", *args)
        started.append(worker)
        return worker.wait_ready() if ready else worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def client(fleet_env: dict[str, str]) -> Iterator[Client]:
    migrations.migrate(fleet_env["DATABASE_URL"])
    with Client(fleet_env["DATABASE_URL"], fleet_env["CELERY_BROKER_URL"],
                FLEET_REGISTRY) as c:
        yield c


def markers(fleet_env: dict[str, str], workflow_id: str = "", step: str = "",
            phase: str = "run") -> list[str]:
    return [p.name for p in Path(fleet_env["RUVON_TEST_MARKERS"]).iterdir()
            if p.name.startswith(f"{workflow_id}") and f".{step}." in p.name
            and f".{phase}." in p.name]


def small_order(i: int, amount: float = 10.0, country: str = "DE") -> dict:
    return {"order_id": f"o-{i}", "customer_id": "c", "ship_to_country": country,
            "items": [{"sku": "x", "quantity": 1, "unit_price": amount}]}


def exists(client: Client, workflow_id: str) -> bool:
    """Whether the workflow is stored yet."""
    try:
        client.get(workflow_id)
        return True
    except Exception:
        return False
