"""The fleet with real worker processes, real Redis and real PostgreSQL."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from ruvon_workers import Client
from ruvon_workers.errors import InvalidStateError, InvalidTransition, UnknownWorkflowType
from ruvon_workers.utils.redis_urls import redis_client

from ..helpers import not_none
from .conftest import ROOT, markers, small_order


def wait_all(client: Client, ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    for workflow_id in ids:
        info = client.wait(workflow_id, max(deadline - time.monotonic(), 0.1))
        statuses[workflow_id] = info.status
    return statuses


def completed_steps(client: Client, workflow_id: str) -> Counter[str]:
    return Counter(h.step or "" for h in client.history(workflow_id) if h.status == "COMPLETED")


def test_200_workflows_complete_each_step_applied_once(client: Client, start_worker) -> None:
    start_worker("--concurrency", "2")
    ids = [client.start("OrderProcessing", small_order(i)) for i in range(200)]
    statuses = wait_all(client, ids, timeout=240)
    assert Counter(statuses.values()) == {"COMPLETED": 200}
    expected = {"Validate_Order", "Check_Amount", "Charge_Payment", "Ship_Order",
                "Send_Confirmation"}
    for workflow_id in ids:
        steps = completed_steps(client, workflow_id)
        assert set(steps) == expected and set(steps.values()) == {1}, steps
        log = client.get(workflow_id).state["log"]
        assert log == ["validated 1 item(s)", "charged 10.00 EUR", "shipped to DE",
                       "confirmation sent"]


def test_pause_resume_and_saga_on_the_fleet(client: Client, start_worker) -> None:
    start_worker("--concurrency", "2")
    big = client.start("OrderProcessing", small_order(1, amount=5000))
    bad = client.start("OrderProcessing", small_order(2, country="ZZ"))
    assert client.wait(big, 30).status == "WAITING_HUMAN"
    with pytest.raises(InvalidStateError, match="approver"):
        client.resume(big, {"approved": True})
    assert client.get(big).status == "WAITING_HUMAN"
    client.resume(big, {"approved": True, "approver": "dana"})
    done = client.wait(big, 30)
    assert done.status == "COMPLETED" and done.state["approved_by"] == "dana"
    rolled = client.wait(bad, 30)
    assert rolled.status == "FAILED_ROLLED_BACK" and rolled.state["refunded"]
    assert rolled.error is not None
    assert rolled.error["step"] == "Ship_Order" and "ZZ" in rolled.error["message"]
    with pytest.raises(InvalidTransition):
        client.resume(done.id, {"approved": True, "approver": "x"})
    with pytest.raises(InvalidTransition):
        client.cancel(done.id, "too late")


def test_kill_9_mid_step_then_new_worker_completes_everything(client: Client, start_worker,
                                                              fleet_env, monkeypatch) -> None:
    monkeypatch.setenv("RUVON_LEASE_SECONDS", "4")  # the producer sets the first lease
    fast_recovery = {"RUVON_LEASE_SECONDS": "4", "RUVON_SWEEP_INTERVAL": "1",
                     "RUVON_TEST_SLOW_SECONDS": "2"}
    worker = start_worker("--concurrency", "2", env=fast_recovery)
    ids = [client.start("Sleepy", {}) for _ in range(6)]
    deadline = time.monotonic() + 30
    while not markers(fleet_env, step="Slow", phase="start") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert markers(fleet_env, step="Slow", phase="start"), worker.log()
    worker.kill9()  # mid-step: a Slow step is sleeping in a pool process
    killed_mid_step = {m.split(".")[0] for m in markers(fleet_env, step="Slow", phase="start")}
    start_worker("--concurrency", "2", env=fast_recovery)
    statuses = wait_all(client, ids, timeout=120)
    assert Counter(statuses.values()) == {"COMPLETED": 6}
    for workflow_id in ids:
        info = client.get(workflow_id)
        assert info.state["count"] == 3 and info.state["path"] == ["First", "Slow", "Last"]
        assert set(completed_steps(client, workflow_id).values()) == {1}
    # The killed executions really ran and were redone: started more often than applied.
    restarted = [w for w in killed_mid_step
                 if len(markers(fleet_env, w, "Slow", "start")) >= 2]
    assert restarted, "no step was interrupted by the kill"


def test_a_pool_process_killed_mid_step_is_sent_again_at_once(client: Client,
                                                                start_worker, fleet_env) -> None:
    # The default 300 s lease: recovery here must not wait for the sweep.
    worker = start_worker("--concurrency", "1")
    started = time.monotonic()
    info = client.wait(client.start("Crashy", {}), 60)
    assert time.monotonic() - started < 30
    assert info.status == "COMPLETED", info.error
    assert info.state["path"] == ["First", "Die_Once", "Last"] and info.state["count"] == 3
    assert len(markers(fleet_env, info.id, "Die_Once")) == 2  # ran twice, applied once
    assert completed_steps(client, info.id)["Die_Once"] == 1
    lost = [h for h in client.history(info.id) if h.detail and "worker_lost" in h.detail]
    assert [not_none(h.detail)["worker_lost"] for h in lost] == [1]
    assert worker.proc.poll() is None  # the worker itself carries on


def test_a_step_that_always_kills_its_process_fails_instead_of_looping(
        client: Client, start_worker, fleet_env) -> None:
    start_worker("--concurrency", "1", env={"RUVON_MAX_WORKER_LOST": "2"})
    info = client.wait(client.start("Doomed", {}), 60)
    assert info.status == "FAILED"
    assert info.error is not None
    assert info.error["type"] == "WorkerLost" and "died (3 time(s)" in info.error["message"]
    time.sleep(1)
    assert len(markers(fleet_env, info.id, "Always_Die")) == 3  # 1 + 2 re-sends, no more


def test_duplicate_step_message_is_a_no_op(client: Client, start_worker, fleet_env) -> None:
    # No worker yet: the first step's message waits in the queue; send it again.
    workflow_id = client.start("Sleepy", {})
    info = client.get(workflow_id)
    from ruvon_workers.fleet.app import create_app
    from ruvon_workers.fleet.dispatch import Dispatcher

    app = create_app(client.registry, fleet_env["CELERY_BROKER_URL"])
    Dispatcher(app, client.registry, app.ruvon_settings).step(
        "Sleepy", "First", workflow_id, info.version)
    app.close()
    # One process: the two deliveries run one after the other, as a redelivery would.
    start_worker("--concurrency", "1", env={"RUVON_TEST_SLOW_SECONDS": "0"})
    assert client.wait(workflow_id, 30).status == "COMPLETED"
    time.sleep(0.5)  # let the duplicate be consumed too
    assert client.get(workflow_id).state["count"] == 3
    assert completed_steps(client, workflow_id)["First"] == 1
    assert len(markers(fleet_env, workflow_id, "First")) == 1  # the duplicate never ran the body


def test_broker_flushed_mid_run_the_sweep_completes_everything(client: Client, start_worker,
                                                               fleet_env, monkeypatch) -> None:
    monkeypatch.setenv("RUVON_LEASE_SECONDS", "3")  # the producer sets the first lease
    start_worker("--concurrency", "2", env={"RUVON_LEASE_SECONDS": "3",
                                            "RUVON_SWEEP_INTERVAL": "1",
                                            "RUVON_TEST_SLOW_SECONDS": "0.3"})
    ids = [client.start("Sleepy", {}) for _ in range(20)]
    time.sleep(0.5)
    broker = redis_client(fleet_env["CELERY_BROKER_URL"])
    broker.flushdb()  # every queued and unacknowledged message is gone
    broker.close()
    statuses = wait_all(client, ids, timeout=120)
    assert Counter(statuses.values()) == {"COMPLETED": 20}
    for workflow_id in ids:
        assert client.get(workflow_id).state["count"] == 3
        assert set(completed_steps(client, workflow_id).values()) == {1}


def test_worker_still_answers_pings_after_the_broker_lost_its_data(
        client: Client, start_worker, fleet_env) -> None:
    # Control messages travel by Redis pub/sub, not by a stored binding: `health ready`
    # (the readiness probe) keeps working after a FLUSHDB, and so do steps.
    start_worker("--concurrency", "1", "--hostname", "probed@%h")

    def ready() -> subprocess.CompletedProcess[str]:
        node = f"probed@{socket.gethostname()}"
        return subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", "health", "ready",
                               "--hostname", node, "--timeout", "2"], env=fleet_env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    assert ready().returncode == 0
    broker = redis_client(fleet_env["CELERY_BROKER_URL"])
    broker.flushdb()
    broker.close()
    answer = ready()
    assert answer.returncode == 0, answer.stderr
    assert client.wait(client.start("Sleepy", {}), 60).status == "COMPLETED"


def test_idempotent_start_under_concurrency(client: Client) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(lambda _: client.start("Sleepy", {}, idempotency_key="key-1"),
                            range(20)))
    assert len(set(ids)) == 1
    assert len(client.list(workflow_type="Sleepy")) == 1


def test_client_refuses_before_storing(client: Client) -> None:
    with pytest.raises(UnknownWorkflowType):
        client.start("Nope", {})
    with pytest.raises(InvalidStateError, match="count"):
        client.start("Sleepy", {"count": "many"})
    assert client.list() == []


def test_many_threads_share_one_client(client: Client, start_worker) -> None:
    start_worker("--concurrency", "2", env={"RUVON_TEST_SLOW_SECONDS": "0"})
    ids: list[str] = []
    lock = threading.Lock()

    def produce(n: int) -> None:
        for _ in range(n):
            workflow_id = client.start("Sleepy", {})
            with lock:
                ids.append(workflow_id)

    threads = [threading.Thread(target=produce, args=(5,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(wait_all(client, ids, 60).values()) == {"COMPLETED": 20}


def test_hard_time_limit_counts_as_a_failed_attempt(client: Client, start_worker,
                                                    fleet_env) -> None:
    # The step ignores its soft limit; the hard limit kills its process each time. Each
    # kill is one attempt of the step's retry policy, then the workflow fails: it is not
    # re-sent forever.
    start_worker("--concurrency", "2", env={"RUVON_HARD_LIMIT_GRACE": "1"})
    workflow_id = client.start("Hang", {})
    info = client.wait(workflow_id, 60)
    assert info.status == "FAILED", info
    assert info.error is not None
    assert info.error["step"] == "Stuck" and info.error["type"] == "TimeLimitExceeded"
    assert info.state["count"] == 1  # First applied, Stuck never
    rows = [(h.step, h.status, h.attempt) for h in client.history(workflow_id)]
    assert ("Stuck", "RETRYING", 1) in rows and ("Stuck", "FAILED", 2) in rows
    assert len(markers(fleet_env, workflow_id, "Stuck", "start")) == 2


def test_a_hard_killed_saga_step_is_compensated_in_a_pool_process(
        client: Client, start_worker, fleet_env) -> None:
    # The kill is recorded by the worker's main process; the compensations (user code,
    # which could hang) run in a pool process under the step's time limit.
    worker = start_worker("--concurrency", "2", env={"RUVON_HARD_LIMIT_GRACE": "1"})
    workflow_id = client.start("SagaHang", {})
    info = client.wait(workflow_id, 60)
    assert info.status == "FAILED_ROLLED_BACK", (info, worker.log())
    assert info.error is not None
    assert info.error["step"] == "Stuck" and info.error["type"] == "TimeLimitExceeded"
    (undone,) = info.state["undone"]
    step, pid = undone.split("@")
    assert step == "First" and int(pid) != worker.proc.pid
    assert len(markers(fleet_env, workflow_id, "First", "undo")) == 1


async def test_in_process_api_on_the_fleet(start_worker, fleet_env) -> None:
    """Ruvon's API with CeleryExecutionProvider: create, wait for input, next_step."""
    import asyncio

    from ruvon_workers import WorkflowBuilder
    from ruvon_workers.examples.orders.models import OrderState

    # From its module: the package exports it lazily (``__getattr__``), untyped for mypy.
    from ruvon_workers.execution.celery import CeleryExecutionProvider
    from ruvon_workers.fleet.app import create_app
    from ruvon_workers.persistence import PostgresPersistenceProvider

    from .conftest import FLEET_REGISTRY

    start_worker("--concurrency", "2")
    builder = WorkflowBuilder.from_registry(FLEET_REGISTRY)
    app = create_app(builder.registry, fleet_env["CELERY_BROKER_URL"])
    persistence = PostgresPersistenceProvider(fleet_env["DATABASE_URL"])
    await persistence.initialize()
    execution = CeleryExecutionProvider(app)

    async def settled(wf):
        for _ in range(300):
            await wf.reload()
            if wf.status not in ("ACTIVE",):
                return wf
            await asyncio.sleep(0.05)
        raise AssertionError(f"still {wf.status}")

    try:
        wf = await builder.create_workflow("OrderProcessing", small_order(7, amount=5000),
                                           persistence_provider=persistence,
                                           execution_provider=execution)
        await settled(wf)
        assert wf.status == "WAITING_HUMAN" and wf.current_step_name == "Manager_Approval"
        await wf.next_step({"approved": True, "approver": "lee"})  # resumes on the fleet
        await settled(wf)
        assert wf.status == "COMPLETED" and isinstance(wf.state, OrderState)
        assert wf.state.approved_by == "lee"
    finally:
        await persistence.close()
        app.close()
