"""Leases that follow the worker: a worker records that it lives, with the steps it holds,
every ``RUVON_WORKER_BEAT`` seconds. Its running steps keep their leases however long they
take; when it is killed, a peer's sweep sends what it held again within seconds, without
waiting for the lease (300 s here, longer than these tests). Every workflow completes and
each step is applied once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from ruvon_workers import Client

from .conftest import markers
from .test_fleet import completed_steps, wait_all

FAST_BEAT = {"RUVON_WORKER_BEAT": "1", "RUVON_SWEEP_INTERVAL": "1"}


def test_a_killed_workers_steps_come_back_in_seconds_not_at_lease_expiry(
        client: Client, start_worker, fleet_env) -> None:
    env = {**FAST_BEAT, "RUVON_TEST_SLOW_SECONDS": "1"}  # the default 300 s lease
    victim = start_worker("--concurrency", "2", env=env)
    ids = [client.start("Sleepy", {}) for _ in range(50)]
    deadline = time.monotonic() + 60
    while not markers(fleet_env, step="Slow", phase="start") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert markers(fleet_env, step="Slow", phase="start"), victim.log()
    victim.kill9()  # mid-step, with prefetched and reserved messages
    killed_at, killed_wall = time.monotonic(), time.time()
    interrupted = {m.split(".")[0] for m in markers(fleet_env, step="Slow", phase="start")}
    start_worker("--concurrency", "2", env=env)
    statuses = wait_all(client, ids, timeout=200)
    recovered_in = time.monotonic() - killed_at
    assert Counter(statuses.values()) == {"COMPLETED": 50}
    for workflow_id in ids:
        assert client.get(workflow_id).state["count"] == 3
        assert set(completed_steps(client, workflow_id).values()) == {1}
    # The steps the kill interrupted ran again (far sooner than the 300 s lease): how long
    # after the kill goes to the closing note, not into an assert.
    again = []
    for workflow_id in interrupted:
        starts = sorted(path.stat().st_mtime for path in (Path(fleet_env["RUVON_TEST_MARKERS"])
                        .glob(f"{workflow_id}.Slow.start.*")))
        assert len(starts) >= 2, f"{workflow_id}: its interrupted step never ran again"
        again.append(starts[1] - killed_wall)
    print(f"interrupted step(s) ran again {min(again):.1f}-{max(again):.1f} s after the kill; "
          f"all 50 workflows completed {recovered_in:.1f} s after it")


def test_a_step_longer_than_its_lease_is_not_sent_again_while_it_runs(
        client: Client, start_worker, fleet_env, monkeypatch) -> None:
    monkeypatch.setenv("RUVON_LEASE_SECONDS", "3")  # the producer sets the first lease
    env = {**FAST_BEAT, "RUVON_LEASE_SECONDS": "3", "RUVON_TEST_SLOW_SECONDS": "8"}
    start_worker("--concurrency", "2", env=env)
    info = client.wait(client.start("Sleepy", {}), 60)
    assert info.status == "COMPLETED"
    # The 8 s step ran once: its worker renewed the 3 s lease while it ran.
    assert len(markers(fleet_env, info.id, "Slow", "start")) == 1
    assert completed_steps(client, info.id)["Slow"] == 1


def test_on_the_threads_pool_a_blocking_step_delays_no_other_workflow(
        client: Client, start_worker, fleet_env) -> None:
    start_worker("--pool", "threads", "--concurrency", "4",
                 env={"RUVON_TEST_SLOW_SECONDS": "6"})
    slow = client.start("Sleepy", {})
    deadline = time.monotonic() + 30
    while not markers(fleet_env, slow, "Slow", "start") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert markers(fleet_env, slow, "Slow", "start")
    quick = client.wait(client.start("LoopItems", {"items": [1, 2], "countdown": 1}), 30)
    assert quick.status == "COMPLETED"
    # The other workflow ran to its end while the blocking step still slept.
    assert not markers(fleet_env, slow, "Slow", "run")
    assert client.wait(slow, 30).status == "COMPLETED"


def test_the_retention_run_removes_ended_workflows_and_keeps_running_ones(
        client: Client, start_worker, fleet_env) -> None:
    # A retention of about half a second, run every second: what ends soon disappears.
    from ruvon_workers.errors import WorkflowNotFound

    start_worker("--concurrency", "2", env={"RUVON_RETENTION_DAYS": str(0.5 / 86400),
                                            "RUVON_RETENTION_INTERVAL": "1",
                                            "RUVON_TEST_SLOW_SECONDS": "0"})
    waiting = client.start("Child", {"value": 1, "child_mode": "wait"})
    done = client.wait(client.start("Sleepy", {}), 30)
    assert done.status == "COMPLETED"
    deadline = time.monotonic() + 30
    gone = False
    while time.monotonic() < deadline and not gone:
        try:
            client.get(done.id)
            time.sleep(0.2)
        except WorkflowNotFound:
            gone = True
    assert gone, "the ended workflow was never removed"
    assert client.get(waiting).status == "WAITING_HUMAN"  # not ended: kept
