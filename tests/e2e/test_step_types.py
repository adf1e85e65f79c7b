"""PARALLEL, LOOP, HTTP, sub-workflows, FIRE_AND_FORGET, CRON_SCHEDULE and dynamic
injection on real worker processes, PostgreSQL and Redis, with real kills."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ruvon_workers import Client

from ..helpers import not_none
from .conftest import ROOT, markers

# Fast recovery: a killed worker's steps and branches are re-sent within seconds.
RECOVERY = {"RUVON_LEASE_SECONDS": "4", "RUVON_SWEEP_INTERVAL": "1"}


def _in_flight(fleet_env: dict[str, str], workflow_id: str, step: str) -> int | None:
    """An item whose body started (``run-N`` marker) but has not finished (``done-N``)."""
    names = [p.name.split(".")[2] for p in Path(fleet_env["RUVON_TEST_MARKERS"]).iterdir()
             if p.name.startswith(f"{workflow_id}.{step}.")]
    started = {n.split("-")[1] for n in names if n.startswith("run-")}
    done = {n.split("-")[1] for n in names if n.startswith("done-")}
    pending = started - done
    return int(min(pending)) if pending else None


def _runs(fleet_env: dict[str, str], workflow_id: str, step: str, item: int) -> int:
    return len(markers(fleet_env, workflow_id, step, phase=f"run-{item}"))


def _wait_for_in_flight(fleet_env: dict[str, str], workflow_id: str, step: str,
                        worker: Any) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        item = _in_flight(fleet_env, workflow_id, step)
        if item is not None and _runs(fleet_env, workflow_id, step, item) == 1:
            return item
        time.sleep(0.02)
    raise AssertionError(f"no {step} item was in flight:\n{worker.log()}")


def test_parallel_50_branches_survive_a_kill_mid_fan_out(client: Client, start_worker,
                                                         fleet_env, monkeypatch) -> None:
    monkeypatch.setenv("RUVON_LEASE_SECONDS", "4")
    env = {**RECOVERY, "RUVON_TEST_STEP_SLEEP": "0.3"}
    worker = start_worker("--concurrency", "2", env=env)
    workflow_id = client.start("FanOut", {"n": 50})
    killed = _wait_for_in_flight(fleet_env, workflow_id, "Score", worker)
    assert client.get(workflow_id).status == "PENDING_ASYNC"
    worker.kill9()  # a branch is sleeping in a pool process
    branches = client.branches(workflow_id)
    assert len(branches) == 50 and branches[killed]["status"] == "PENDING"
    shown = subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", "show",
                            workflow_id], env=fleet_env, cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert "PENDING_ASYNC" in shown.stdout and " of 50 done" in shown.stdout, shown.stderr
    start_worker("--concurrency", "2", env=env)
    info = client.wait(workflow_id, 120)
    assert info.status == "COMPLETED", info.error
    assert info.state["scores"] == {str(i): i * i for i in range(50)}
    assert info.state["done"] is True
    # The interrupted branch ran again; its result was merged once, with the others'.
    assert _runs(fleet_env, workflow_id, "Score", killed) == 2
    with psycopg.connect(fleet_env["DATABASE_URL"]) as conn:
        rows = conn.execute("SELECT status, count(*) FROM workflow_branches "
                            "WHERE workflow_id = %s GROUP BY status", (workflow_id,)).fetchall()
        remaining = conn.execute("SELECT remaining FROM workflow_fanouts WHERE workflow_id = %s",
                                 (workflow_id,)).fetchone()
    assert rows == [("COMPLETED", 50)] and remaining == (0,)
    joined = [h for h in client.history(workflow_id)
              if h.step == "Score" and h.status == "COMPLETED"]
    assert len(joined) == 1 and joined[0].detail is not None \
        and joined[0].detail["branches"] == 50


def test_parallel_conflict_raise_error_fails_naming_the_key(client: Client,
                                                            start_worker) -> None:
    start_worker("--concurrency", "2")
    info = client.wait(client.start("Conflicts", {}), 60)
    assert info.status == "FAILED"
    assert info.error is not None
    assert "merge conflict on 'winner'" in info.error["message"]
    assert "'credit' and 'fraud'" in info.error["message"]


def test_parallel_branch_past_timeout_does_not_hang_the_workflow(client: Client,
                                                                 start_worker) -> None:
    worker = start_worker("--concurrency", "2", env={"RUVON_SWEEP_INTERVAL": "1"})
    started = time.monotonic()
    info = client.wait(client.start("Partial", {}), 30)
    assert time.monotonic() - started < 7  # the slow branch would take 8 s
    assert info.status == "COMPLETED", info.error
    assert info.state["winner"] == "credit" and info.state["checked"] == ["credit"]
    (joined,) = [h for h in client.history(info.id)
                 if h.step == "Checks" and h.status == "COMPLETED"]
    assert joined.detail is not None
    assert joined.detail["failed_branches"] == [
        {"branch": "slow", "error": "did not report within timeout_seconds (2 s)"}]
    worker.kill9()  # the slow branch is still sleeping; its late result is ignored


def test_loop_over_20_items_resumes_at_the_killed_item(client: Client, start_worker,
                                                       fleet_env, monkeypatch) -> None:
    monkeypatch.setenv("RUVON_LEASE_SECONDS", "4")
    env = {**RECOVERY, "RUVON_TEST_STEP_SLEEP": "0.2"}
    worker = start_worker("--concurrency", "1", env=env)
    items = list(range(1, 21))
    workflow_id = client.start("LoopItems", {"items": items})
    # Let a few iterations commit, then kill in the middle of one.
    deadline = time.monotonic() + 60
    while _runs(fleet_env, workflow_id, "Process", 5) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = _wait_for_in_flight(fleet_env, workflow_id, "Process", worker)
    worker.kill9()
    start_worker("--concurrency", "1", env=env)
    info = client.wait(workflow_id, 120)
    assert info.status == "COMPLETED", info.error
    assert info.state["processed"] == [i * 10 for i in items]  # each item once, in order
    runs = {i: _runs(fleet_env, workflow_id, "Process", i) for i in range(20)}
    assert runs[killed] == 2  # the interrupted iteration ran again ...
    assert all(n == 1 for i, n in runs.items() if i != killed)  # ... and only that one
    iterations = [not_none(h.detail)["iteration"] for h in client.history(workflow_id)
                  if h.status == "ITERATED" and h.step == "Process"]
    assert iterations == list(range(19))  # one commit per iteration; the 20th completes it


class _Api(BaseHTTPRequestHandler):
    """Answers 503 ``fail_first`` times, then ``status`` with a JSON body."""

    fail_first = 0
    status = 200
    seen: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path,
                                "authorization": self.headers.get("Authorization")})
        body: dict[str, object]
        if len(self.seen) <= self.fail_first:
            code, body = 503, {"error": "busy, try again"}
        else:
            code = self.status
            body = {"order": self.path.rsplit("/", 1)[-1], "total": 42.5} if code == 200 \
                else {"error": "boom: the order service broke"}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[tuple[str, type[_Api]]]:
    handler = type("Api", (_Api,), {"seen": [], "fail_first": 0, "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_http_retries_then_succeeds_and_records_failures_without_secrets(
        client: Client, start_worker, api) -> None:
    url, handler = api
    start_worker("--concurrency", "2", env={"RUVON_SECRET_TEST_TOKEN": "s3cret-token"})
    handler.fail_first = 2
    ok = client.wait(client.start("Fetch", {"base_url": url, "order_id": "A-1"}), 60)
    assert ok.status == "COMPLETED", ok.error
    assert ok.state["http_response"] == {"status_code": 200,
                                         "body": {"order": "A-1", "total": 42.5}}
    assert [r["path"] for r in handler.seen] == ["/orders/A-1"] * 3
    assert {r["authorization"] for r in handler.seen} == {"Bearer s3cret-token"}

    handler.seen.clear()
    handler.fail_first, handler.status = 0, 500
    failed_id = client.start("Fetch", {"base_url": url, "order_id": "B-2"})
    failed = client.wait(failed_id, 60)
    assert failed.status == "FAILED"
    assert failed.error is not None
    assert "returned 500" in failed.error["message"]
    assert "boom: the order service broke" in failed.error["message"]
    assert len(handler.seen) == 3  # the step's retry policy: 3 attempts
    stored = json.dumps([failed.error, *[h.error for h in client.history(failed_id)]])
    assert "s3cret-token" not in stored


def test_http_template_reaching_python_internals_is_refused(client: Client,
                                                            start_worker) -> None:
    start_worker("--concurrency", "1")
    info = client.wait(client.start("FetchEvil", {}), 60)
    assert info.status == "FAILED"
    assert info.error is not None
    assert "refused" in info.error["message"] and "__class__" in info.error["message"]


def test_sub_workflow_completes_and_the_parent_resumes_with_its_result(
        client: Client, start_worker) -> None:
    start_worker("--concurrency", "2")
    info = client.wait(client.start("Parent", {"value": 21}), 60)
    assert info.status == "COMPLETED", info.error
    assert info.state["result"] == 42 and info.state["after"] is True
    child = client.get(next(h.detail["sub_workflow_id"] for h in client.history(info.id)
                            if h.detail and "sub_workflow_id" in h.detail))
    assert child.status == "COMPLETED" and child.parent_id == info.id


def test_failed_child_fails_the_parent(client: Client, start_worker) -> None:
    start_worker("--concurrency", "2")
    info = client.wait(client.start("Parent", {"value": 1, "child_mode": "fail"}), 60)
    assert info.status == "FAILED_CHILD_WORKFLOW"
    assert info.error is not None
    assert info.error["child_status"] == "FAILED"
    assert "the child could not do its work" in info.error["message"]


def test_child_waiting_for_input_shows_on_the_parent(client: Client,
                                                      start_worker) -> None:
    start_worker("--concurrency", "2")
    parent_id = client.start("Parent", {"value": 5, "child_mode": "wait"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parent = client.get(parent_id)
        if (parent.child or {}).get("status") == "WAITING_HUMAN":
            break
        time.sleep(0.1)
    assert parent.status == "WAITING_CHILD_HUMAN_INPUT"
    assert client.wait(parent_id, 5).status == "WAITING_CHILD_HUMAN_INPUT"  # settled
    assert parent.child is not None
    assert parent.child["current_step"] == "Wait_Note"
    client.resume(parent.child["id"], {"note": "looks fine"})
    info = client.wait(parent_id, 60)
    assert info.status == "COMPLETED" and info.state["result"] == 10


def test_cancelling_a_waiting_parent_cancels_its_child(client: Client,
                                                       start_worker) -> None:
    start_worker("--concurrency", "2")
    parent_id = client.start("Parent", {"value": 5, "child_mode": "wait"})
    deadline = time.monotonic() + 60
    while (client.get(parent_id).child or {}).get("status") != "WAITING_HUMAN":
        assert time.monotonic() < deadline, client.get(parent_id)
        time.sleep(0.1)
    child_id = not_none(client.get(parent_id).child)["id"]
    client.cancel(parent_id, "order withdrawn")
    child = client.get(child_id)
    assert child.status == "CANCELLED" and child.error is not None \
        and "order withdrawn" in child.error["message"]
    time.sleep(1)  # the child's end wakes the parent: it stays cancelled
    assert client.get(parent_id).status == "CANCELLED"


def test_fire_and_forget_starts_an_independent_workflow(client: Client,
                                                        start_worker) -> None:
    start_worker("--concurrency", "2")
    info = client.wait(client.start("Spawner", {"label": "hello"}), 60)
    assert info.status == "COMPLETED" and info.state["done"] is True
    spawned = client.wait(info.state["spawned_id"], 60)
    assert spawned.workflow_type == "Ticked" and spawned.status == "COMPLETED"
    assert spawned.state == {"label": "hello", "ran": True} and spawned.parent_id is None


def test_dynamic_injection_on_the_fleet(client: Client, start_worker) -> None:
    start_worker("--concurrency", "2")
    high = client.wait(client.start("Inject", {"amount": 5000}), 60)
    low = client.wait(client.start("Inject", {"amount": 5}), 60)
    assert high.state["path"] == ["Assess", "Manual_Review", "Second_Review", "Finish"]
    assert low.state["path"] == ["Assess", "Finish"]


def test_schedule_with_two_schedulers_fires_once_per_tick(client: Client, start_worker,
                                                          fleet_env) -> None:
    fast = {"RUVON_SCHEDULER_INTERVAL": "0.2"}
    workers = [start_worker("--concurrency", "1", env=fast) for _ in range(2)]
    assert client.wait(client.start("Scheduler", {"label": "L"}), 60).status == "COMPLETED"
    time.sleep(9)  # "* * * * * */2": a tick every 2 seconds
    cli = subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", "schedules",
                          "remove", "test-every-2s"], env=fleet_env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    time.sleep(3)  # nothing fires after the removal
    with psycopg.connect(fleet_env["DATABASE_URL"]) as conn:
        keys = [r[0] for r in conn.execute(
            "SELECT idempotency_key FROM workflow_executions WHERE workflow_type = 'Ticked' "
            "ORDER BY idempotency_key").fetchall()]
    ticks = [key.split(":", 3)[3] for key in keys]
    assert all(key.startswith("ruvon:schedule:test-every-2s:") for key in keys)
    assert len(ticks) == len(set(ticks)) >= 3  # one workflow per tick
    times = [dt.datetime.fromisoformat(t) for t in ticks]
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(times)} == {2.0}
    # Each tick moved the schedule on once, by one of the two schedulers (the tick that
    # raced the removal may have started its workflow and found the schedule gone).
    fired = sum(w.log().count("schedule test-every-2s fired") for w in workers)
    assert len(ticks) - 1 <= fired <= len(ticks)
    for key in keys:
        assert client.wait(_id_for(fleet_env, key), 30).state["label"] == "tick of L"


def _id_for(fleet_env: dict[str, str], key: str) -> str:
    with psycopg.connect(fleet_env["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT id FROM workflow_executions WHERE idempotency_key = %s",
                           (key,)).fetchone()
    assert row is not None
    return str(row[0])


def test_steps_the_fleet_must_refuse_fail_once_instead_of_running_again(
        client: Client, start_worker) -> None:
    """A result PostgreSQL cannot store, a LOOP body starting a sub-workflow, a PARALLEL
    branch doing so: each fails its workflow with the reason, and starts nothing."""
    worker = start_worker("--concurrency", "2", env=RECOVERY)
    cases = {
        "nul": "state field 'note' contains a NUL character",
        "child": "iteration 1: a LOOP body cannot start sub-workflow 'Child'",
        "branch_child": "branch 0: a PARALLEL branch cannot start sub-workflow 'Child'",
    }
    ids = {mode: client.start("Misfits", {"mode": mode, "items": [1, 2, 3]})
           for mode in cases}
    for mode, reason in cases.items():
        info = client.wait(ids[mode], 60)
        assert info.status == "FAILED", (mode, info.status, worker.log())
        assert info.error is not None
        assert reason in info.error["message"], info.error
    for mode in cases:
        assert [h.status for h in client.history(ids[mode])].count("FAILED") == 1
    assert client.get(ids["nul"]).state["processed"] == [1]  # iteration 0 stands
    assert client.list(workflow_type="Child") == []
