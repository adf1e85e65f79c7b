"""Continuation on real workers (``RUVON_INLINE_STEPS``): a task runs the steps after its
own, each committed on its own, so a ``kill -9`` in the middle of a chain loses at most
the step that was running, and a continued step keeps its own soft time limit."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from ruvon_workers import Client

from .conftest import markers
from .test_fleet import completed_steps, wait_all

INLINE = {"RUVON_INLINE_STEPS": "5", "RUVON_WORKER_BEAT": "1", "RUVON_SWEEP_INTERVAL": "1"}
STEPS = ["One", "Two", "Three", "Four", "Five"]


def test_a_kill_in_the_middle_of_continued_chains_loses_and_doubles_nothing(
        client: Client, start_worker, fleet_env) -> None:
    # Steps of 0.15 s and a budget of 0.4 s: a task runs One, Two and Three, then sends
    # Four, whose task runs Four and Five (two tasks per workflow instead of five).
    env = {**INLINE, "RUVON_TEST_SLOW_SECONDS": "0.15", "RUVON_INLINE_BUDGET_MS": "400"}
    victim = start_worker("--concurrency", "2", env=env)
    workers = [victim]
    ids = [client.start("Chain", {}) for _ in range(20)]
    root = Path(fleet_env["RUVON_TEST_MARKERS"])
    deadline = time.monotonic() + 60
    # Kill once some chains are inside a task that continued, with other chains' Four
    # messages waiting or just taken.
    while len(markers(fleet_env, step="Three", phase="start")) < 2:
        assert time.monotonic() < deadline, victim.log()
        time.sleep(0.02)
    victim.kill9()
    workers.append(start_worker("--concurrency", "2", env=env))
    statuses = wait_all(client, ids, timeout=60)
    assert Counter(statuses.values()) == {"COMPLETED": 20}, [
        (w, client.get(w).status, client.get(w).current_step) for w in ids
        if statuses[w] != "COMPLETED"]
    for workflow_id in ids:
        record = client.get(workflow_id)
        assert record.state["count"] == 5 and record.state["path"] == STEPS
        assert completed_steps(client, workflow_id) == Counter(dict.fromkeys(STEPS, 1))
    # Every step ran (some twice: the ones the kill interrupted), from far fewer step
    # messages than steps: two tasks per chain, and the few the kill made send again.
    assert len(list(root.glob("*.start.*"))) >= 100
    received = sum(1 for worker in workers
                   for line in worker.log_path.read_text(errors="replace").splitlines()
                   if "ruvon.step.Chain." in line and line.endswith(" received"))
    assert received <= 60, received


def received(worker, workflow_type: str) -> Counter[str]:
    """The step tasks a worker took from the broker, by step name (its INFO log)."""
    prefix = f"ruvon.step.{workflow_type}."
    found: Counter[str] = Counter()
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if prefix in line and line.endswith(" received"):
            found[line.split(prefix, 1)[1].split("[", 1)[0]] += 1
    return found


def test_steps_that_must_hop_go_through_the_broker_under_continuation(
        client: Client, start_worker, fleet_env, tmp_path: Path) -> None:
    # Hops: Start, Then, Isolated (inline: false), Flaky (fails once; retried after a
    # delay), Routed (queue hops-side), Back. One worker serves the default queue only,
    # another only hops-side.
    main = start_worker("--queues", fleet_env["RUVON_DEFAULT_QUEUE"], "--concurrency", "1",
                        env=INLINE)
    side = start_worker("--queues", "hops-side", "--concurrency", "1",
                        env={**INLINE, "RUVON_HEARTBEAT_FILE": str(tmp_path / "side.beat")})
    ids = [client.start("Hops", {}) for _ in range(3)]
    statuses = wait_all(client, ids, timeout=60)
    assert set(statuses.values()) == {"COMPLETED"}, (main.log(), side.log())
    for workflow_id in ids:
        record = client.get(workflow_id)
        assert record.state["path"] == ["Start", "Then", "Isolated", "Flaky", "Routed", "Back"]
        assert len(markers(fleet_env, workflow_id, "Flaky")) == 2  # failed, then retried
    # Then continued in Start's task; Isolated hopped (inline: false); Flaky's first
    # attempt continued in Isolated's task and its retry hopped (a delay); Routed ran on
    # the worker serving its queue, and Back hopped back to the default queue.
    assert received(main, "Hops") == {"Start": 3, "Isolated": 3, "Flaky": 3, "Back": 3}
    assert received(side, "Hops") == {"Routed": 3}


def test_a_continued_step_past_its_time_limit_is_a_failed_attempt(
        client: Client, start_worker, fleet_env) -> None:
    start_worker("--concurrency", "1", env={**INLINE, "RUVON_TEST_SLOW_SECONDS": "30"})
    info = client.wait(client.start("ChainLimit", {}), 60)
    assert info.status == "FAILED" and info.current_step == "Capped"
    assert info.error is not None and info.error["type"] == "SoftTimeLimitExceeded"
    assert not markers(fleet_env, info.id, "Capped", "run")  # stopped, not finished
