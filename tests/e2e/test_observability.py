"""Metrics from a real prefork worker, and Flower watching the fleet."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ruvon_workers import Client, WorkflowBuilder
from ruvon_workers.definitions import Registry
from ruvon_workers.persistence import PostgresPersistenceProvider
from ruvon_workers.utils.redis_urls import redis_client

from ..helpers import free_port
from .conftest import ROOT, small_order

STEPS = ("Validate_Order", "Check_Amount", "Charge_Payment", "Ship_Order", "Send_Confirmation")
DASHBOARD = ROOT / "config" / "grafana" / "ruvon-dashboard.json"
FLOWER_LOGIN = ("ops", "flower-test-password")

Samples = list[tuple[str, dict[str, str], float]]


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def scrape(port: int) -> tuple[dict[str, str], Samples]:
    """``({family: type}, [(sample name, labels, value)])`` from the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    families = list(text_string_to_metric_families(text))
    return ({f.name: f.type for f in families},
            [(s.name, s.labels, s.value) for f in families for s in f.samples])


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for n, lbl, v in samples if n == name and labels.items() <= lbl.items())


async def stored_but_never_sent(database_url: str, registry: Registry) -> str:
    """A workflow whose first step was never published: only the recovery sweep runs it."""
    record = WorkflowBuilder(registry).new_record("OrderProcessing", small_order(99))
    store = PostgresPersistenceProvider(database_url, pool_min_size=1, pool_max_size=1)
    await store.initialize()
    try:
        stored, _ = await store.create_workflow(record, due_in=0)
    finally:
        await store.close()
    return stored.id


def wait_all(client: Client, ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    return {i: client.wait(i, max(deadline - time.monotonic(), 0.1)).status for i in ids}


def test_metrics_equal_the_work_done(client: Client, start_worker, fleet_env,
                                     tmp_path: Path) -> None:
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    worker = start_worker("--concurrency", "2", env={
        "RUVON_METRICS_PORT": str(port), "RUVON_METRICS_ADDRESS": "127.0.0.1",
        "RUVON_SWEEP_INTERVAL": "1", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    done = [client.start("OrderProcessing", small_order(i)) for i in range(10)]
    rolled_back = client.start("OrderProcessing", small_order(10, country="ZZ"))
    approved = client.start("OrderProcessing", small_order(11, amount=5000))
    assert client.wait(approved, 30).status == "WAITING_HUMAN"
    client.resume(approved, {"approved": True, "approver": "dana"})
    swept = asyncio.run(stored_but_never_sent(fleet_env["DATABASE_URL"], client.registry))
    statuses = wait_all(client, [*done, approved, swept, rolled_back], timeout=60)
    assert list(statuses.values()) == ["COMPLETED"] * 12 + ["FAILED_ROLLED_BACK"], worker.log()

    # A duplicate of a step message that was applied long ago changes nothing.
    from ruvon_workers.fleet.app import create_app
    from ruvon_workers.fleet.dispatch import Dispatcher

    app = create_app(client.registry, fleet_env["CELERY_BROKER_URL"])
    Dispatcher(app, client.registry, app.ruvon_settings).step(
        "OrderProcessing", "Validate_Order", done[0], 0)
    app.close()

    def settled() -> tuple[dict[str, str], Samples] | None:
        types, samples = scrape(port)
        stale = total(samples, "ruvon_steps_total", outcome="stale")
        completed = total(samples, "ruvon_workflows", status="COMPLETED")
        return (types, samples) if stale == 1 and completed == 12 else None

    types, samples = wait_for(settled, 20, "the duplicate and the status count")

    expected_types = {
        "ruvon_workflow_duration_seconds": "histogram", "ruvon_step_duration_seconds":
        "histogram", "ruvon_db_query_duration_seconds": "histogram",
        "ruvon_queue_lag_seconds": "histogram", "ruvon_workflows_started": "counter",
        "ruvon_steps": "counter", "ruvon_recovery_redispatched": "counter",
        "ruvon_db_pool_active_connections": "gauge", "ruvon_db_pool_max_size": "gauge",
        "ruvon_workflows": "gauge"}
    assert expected_types.items() <= types.items()
    labels = {n: set(lbl) for n, lbl, _ in samples}
    assert labels["ruvon_step_duration_seconds_count"] == {"step_name"}
    assert labels["ruvon_db_query_duration_seconds_count"] == {"operation"}
    assert labels["ruvon_steps_total"] == {"workflow_type", "step_name", "outcome"}
    assert labels["ruvon_db_pool_max_size"] == set()

    # 13 workflows: 12 completed (one after a manager's approval, one found only by the
    # recovery sweep), one rolled back when shipping failed.
    assert total(samples, "ruvon_workflows_started_total") == 13
    assert total(samples, "ruvon_workflows_started_total", workflow_type="OrderProcessing") == 13
    assert total(samples, "ruvon_workflow_duration_seconds_count") == 13
    assert total(samples, "ruvon_workflow_duration_seconds_count", status="COMPLETED") == 12
    assert total(samples, "ruvon_workflow_duration_seconds_count",
                 status="FAILED_ROLLED_BACK") == 1
    assert total(samples, "ruvon_workflow_duration_seconds_bucket", le="+Inf") == 13
    assert total(samples, "ruvon_recovery_redispatched_total") == 1

    # Step durations: every step that ran and was committed, duplicates excluded.
    runs = {"Validate_Order": 13, "Check_Amount": 13, "Manager_Approval": 1,
            "Charge_Payment": 13, "Ship_Order": 13, "Send_Confirmation": 12}
    for step, count in runs.items():
        assert total(samples, "ruvon_step_duration_seconds_count", step_name=step) == count, step
    assert total(samples, "ruvon_steps_total", step_name="Ship_Order", outcome="failed") == 1
    assert total(samples, "ruvon_steps_total", step_name="Ship_Order", outcome="applied") == 12
    assert total(samples, "ruvon_steps_total", step_name="Validate_Order", outcome="stale") == 1
    messages = sum(runs.values()) + 1  # and the duplicate
    assert total(samples, "ruvon_steps_total") == messages
    queue = fleet_env["RUVON_DEFAULT_QUEUE"]
    assert total(samples, "ruvon_queue_lag_seconds_count", queue=queue) == messages
    assert total(samples, "ruvon_step_retries_total") == 0
    # One compare-and-set per committed step, from the pool processes' own queries.
    assert total(samples, "ruvon_db_query_duration_seconds_count",
                 operation="save_workflow") == messages - 1
    assert total(samples, "ruvon_db_query_duration_seconds_count", operation="claim_due") >= 1

    assert total(samples, "ruvon_workflows", status="FAILED_ROLLED_BACK") == 1
    assert total(samples, "ruvon_workflows", status="ACTIVE") == 0

    # The samples are the sum over the pool processes (each writes its own files).
    children = {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("histogram_*.db")}
    children.discard(worker.proc.pid)
    assert len(children) == 2, sorted(metrics_dir.iterdir())
    # Each pool process's pool: POSTGRES_POOL_MAX_SIZE=4 (psycopg_pool's statistics).
    assert total(samples, "ruvon_db_pool_max_size") == 8
    assert 0 <= total(samples, "ruvon_db_pool_active_connections") <= 8

    # Every dashboard panel shows a series this worker exports.
    import promql_parser

    def metric_names(expr: str) -> set[str | None]:
        names: set[str | None] = set()
        promql_parser.walk(promql_parser.parse(expr), lambda node: names.add(node.name)
                           if isinstance(node, promql_parser.VectorSelector) else None)
        return names

    exported = {name for name, _, _ in samples}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        names = set().union(*(metric_names(t["expr"]) for t in panel["targets"]))
        assert names & exported, f"panel {panel['title']!r}: none of {names} is exported"


def test_metrics_port_taken_the_worker_runs_on(client: Client, start_worker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = start_worker("--concurrency", "1", env={
            "RUVON_METRICS_PORT": str(port), "RUVON_METRICS_ADDRESS": "127.0.0.1",
            "RUVON_TEST_SLOW_SECONDS": "0"})
        workflow_id = client.start("Sleepy", {})
        assert client.wait(workflow_id, 30).status == "COMPLETED"
    assert "cannot serve metrics on 127.0.0.1:" in worker.log()


# -- Flower ------------------------------------------------------------------------------


def flower_get(port: int, path: str, login: tuple[str, str] | None = FLOWER_LOGIN) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if login:
        token = base64.b64encode(":".join(login).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read().decode()
    return json.loads(body) if path.startswith("/api/") else body


@contextlib.contextmanager
def running_flower(fleet_env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    """``ruvon-workers flower`` with a login and no database, listening for events."""
    port = free_port()
    env = {k: v for k, v in fleet_env.items() if k not in ("DATABASE_URL", "RUVON_DB_URL")}
    env["FLOWER_BASIC_AUTH"] = ":".join(FLOWER_LOGIN)
    log = open(tmp_path / "flower.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ruvon_workers.cli.main", "flower", "--port", str(port),
         "--address", "127.0.0.1"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "flower.log").read_text())
        with contextlib.suppress(OSError):
            return flower_get(port, "/healthcheck", login=None) == "OK"
        return False

    broker = redis_client(fleet_env["CELERY_BROKER_URL"])
    try:
        wait_for(up, 30, "Flower to answer")
        # Events published before Flower's receiver is bound are lost: wait for it.
        wait_for(lambda: broker.exists("_kombu.binding.celeryev"), 30, "Flower's receiver")
        yield port
    finally:
        broker.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def run_orders(client: Client, start_worker, port: int, count: int) -> list[str]:
    start_worker("--concurrency", "2", env={"RUVON_TEST_SLOW_SECONDS": "0"})

    def events_on() -> bool:
        # Flower switches task events on in the workers it finds (it asks every 5 s).
        probe = client.start("Sleepy", {})
        client.wait(probe, 10)
        time.sleep(0.3)
        return bool(flower_get(port, f"/api/tasks?search={probe}"))

    wait_for(events_on, 30, "the worker to send task events")
    ids = [client.start("OrderProcessing", small_order(i)) for i in range(count)]
    assert set(wait_all(client, ids, 60).values()) == {"COMPLETED"}
    return ids


def test_flower_finds_every_step_task_of_a_workflow(client: Client, start_worker, fleet_env,
                                                    tmp_path: Path) -> None:
    with running_flower(fleet_env, tmp_path) as port:
        ids = run_orders(client, start_worker, port, 3)
        with pytest.raises(urllib.error.HTTPError) as refused:
            flower_get(port, "/api/tasks", login=None)
        assert refused.value.code == 401
        with pytest.raises(urllib.error.HTTPError) as refused:
            flower_get(port, "/api/tasks", login=("ops", "wrong"))
        assert refused.value.code == 401
        for workflow_id in ids:
            def tasks(query: str, workflow_id: str = workflow_id) -> dict[str, Any] | None:
                found = flower_get(port, f"/api/tasks?search={query}")
                done = [t for t in found.values() if t["state"] == "SUCCESS"]
                return found if len(done) == len(STEPS) else None

            exact = wait_for(lambda: tasks(f"kwargs:workflow_id={workflow_id}"), 20,  # noqa: B023
                             f"Flower to list the steps of {workflow_id}")
            assert sorted(t["name"] for t in exact.values()) == sorted(
                f"ruvon.step.OrderProcessing.{s}" for s in STEPS)
            for task in exact.values():
                assert f"'workflow_id': '{workflow_id}'" in task["kwargs"]
                assert f"'step': '{task['name'].rsplit('.', 1)[1]}'" in task["kwargs"]
            # Pasting the bare id into the search box finds the same tasks.
            assert set(flower_get(port, f"/api/tasks?search={workflow_id}")) == set(exact)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    message = ("Chromium is not installed (apt-get install -y chromium); it takes the "
               "screenshot of Flower's tasks page")
    if os.getenv("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def browse(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
         "--window-size=1600,900", "--hide-scrollbars", *args, url],
        capture_output=True, text=True, timeout=90, check=True)


def test_flower_tasks_page_in_a_browser(client: Client, start_worker, fleet_env,
                                        tmp_path: Path) -> None:
    chromium()
    with running_flower(fleet_env, tmp_path) as port:
        ids = run_orders(client, start_worker, port, 3)

        def orders_seen() -> bool:
            tasks = flower_get(port, "/api/tasks").values()
            return len([t for t in tasks if t["state"] == "SUCCESS"
                        and any(i in (t.get("kwargs") or "") for i in ids)]) == 3 * len(STEPS)

        wait_for(orders_seen, 20, "Flower to see every step task")
        # Basic auth: Chromium takes the login from the URL and keeps it for the page's
        # requests to Flower's table data.
        url = "http://{}:{}@127.0.0.1:{}/tasks".format(*FLOWER_LOGIN, port)
        page = browse(url, tmp_path / "profile-dom", "--dump-dom").stdout
        for step in STEPS:
            assert f"ruvon.step.OrderProcessing.{step}" in page, step
        assert any(workflow_id in page for workflow_id in ids)
        shot = tmp_path / "flower-tasks.png"
        browse(url, tmp_path / "profile-shot", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.getenv("RUVON_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "flower-tasks.png")
