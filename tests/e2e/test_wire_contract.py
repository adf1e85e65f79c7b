"""Producers in any language: raw protocol messages on Redis, and bad messages."""

from __future__ import annotations

import base64
import json
import time
import uuid

from ruvon_workers import Client
from ruvon_workers.utils.redis_urls import redis_client

from ..helpers import not_none
from .conftest import exists, small_order


def raw_message(task: str, kwargs: dict, *, queue: str, body: bytes | None = None,
                headers: dict | None = None) -> bytes:
    """A Celery protocol-2 message as kombu's Redis transport stores it: what any
    language can LPUSH onto the queue's list."""
    task_id = str(uuid.uuid4())
    if body is None:
        body = json.dumps([[], kwargs, {"callbacks": None, "errbacks": None, "chain": None,
                                        "chord": None}]).encode()
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers if headers is not None else {
            "lang": "js", "task": task, "id": task_id, "root_id": task_id,
            "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None},
        "properties": {"correlation_id": task_id, "delivery_mode": 2,
                       "delivery_tag": str(uuid.uuid4()), "body_encoding": "base64",
                       "delivery_info": {"exchange": "", "routing_key": queue},
                       "priority": 0},
    }
    return json.dumps(message).encode()


def push(fleet_env: dict[str, str], task: str | None, kwargs: dict | None = None, *,
         raw: bytes | None = None, body: bytes | None = None,
         headers: dict | None = None) -> None:
    """LPUSH a message (or, with ``task=None``, raw bytes in ``raw=``) onto the fleet's
    default queue ("ruvon" unless configured)."""
    queue = fleet_env["RUVON_DEFAULT_QUEUE"]
    message = raw
    if message is None:
        message = raw_message(task or "", kwargs or {}, queue=queue, body=body,
                              headers=headers)
    client = redis_client(fleet_env["CELERY_BROKER_URL"])
    client.lpush(queue, message)
    client.close()


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_raw_protocol_message_starts_resumes_and_cancels(client: Client, start_worker,
                                                         fleet_env) -> None:
    start_worker("--concurrency", "2")
    small, big, other = (str(uuid.uuid4()) for _ in range(3))
    push(fleet_env, "ruvon.start_workflow", {
        "workflow_type": "OrderProcessing", "initial_data": small_order(1),
        "workflow_id": small})
    push(fleet_env, "ruvon.start_workflow", {
        "workflow_type": "OrderProcessing", "initial_data": small_order(2, amount=2000),
        "workflow_id": big, "idempotency_key": "raw-2"})
    push(fleet_env, "ruvon.start_workflow", {
        "workflow_type": "OrderProcessing", "initial_data": small_order(3, amount=2000),
        "workflow_id": other})
    assert wait_for(lambda: exists(client, small) and exists(client, big)
                    and exists(client, other))
    assert client.wait(small, 30).status == "COMPLETED"
    assert client.wait(big, 30).status == "WAITING_HUMAN"
    push(fleet_env, "ruvon.resume_workflow", {
        "workflow_id": big, "user_input": {"approved": True, "approver": "ops"}})
    assert wait_for(lambda: client.get(big).status == "COMPLETED")
    assert client.get(big).state["approved_by"] == "ops"
    client.wait(other, 30)
    push(fleet_env, "ruvon.cancel_workflow", {"workflow_id": other,
                                                          "reason": "from php"})
    assert wait_for(lambda: client.get(other).status == "CANCELLED")
    assert not_none(client.get(other).error)["message"] == "from php"


def test_bad_messages_are_recorded_and_the_worker_keeps_serving(client: Client, start_worker,
                                                                fleet_env) -> None:
    worker = start_worker("--concurrency", "2")
    unknown_id = str(uuid.uuid4())
    push(fleet_env, "ruvon.start_workflow", {"workflow_type": "NoSuchType",
                                                         "initial_data": {}})
    push(fleet_env, "ruvon.start_workflow", {
        "workflow_type": "OrderProcessing", "initial_data": {"order_id": 5}})
    push(fleet_env, "ruvon.start_workflow", {}, body=b"{not json")
    push(fleet_env, "ruvon.resume_workflow", {"workflow_id": unknown_id,
                                                          "user_input": {}})
    push(fleet_env, "ruvon.no_such_task", {})
    push(fleet_env, "x", {}, headers={"task": "ruvon.no_such_task"})  # no id
    push(fleet_env, None, raw=b"this is not even a kombu envelope")
    rows = wait_for(lambda: len(client.dead_letters()) >= 7 and client.dead_letters(), 30)
    reasons = "\n".join(f"{r['task']}: {r['reason']}" for r in rows)
    assert "Unknown workflow type 'NoSuchType'" in reasons
    assert "Initial data for 'OrderProcessing'" in reasons and "customer_id" in reasons
    assert "cannot decode message body" in reasons
    assert f"No workflow with id '{unknown_id}'" in reasons
    assert "unknown task 'ruvon.no_such_task'" in reasons
    assert "not a Celery message" in reasons
    assert worker.proc.poll() is None, worker.log()
    # ... and it still serves real work.
    workflow_id = client.start("OrderProcessing", small_order(9))
    assert client.wait(workflow_id, 30).status == "COMPLETED"
    assert worker.proc.poll() is None
