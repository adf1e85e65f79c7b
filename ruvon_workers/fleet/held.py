"""What a worker holds of the fleet's messages, and how a held message is sent again.

A worker holds a message from the moment it takes it from the broker until its task ends:
running, reserved (prefetched) or waiting on a countdown. The broker no longer has it
(the fleet does not use kombu's ack emulation on Redis), so the worker's beat records in
PostgreSQL what it holds (``WorkerBeat``): step messages as ``(workflow id, version,
branch)`` (their leases follow the worker), producers' messages whole. When the worker
dies, a peer's sweep makes its steps due and sends its producers' messages again
(``sweep``); when it shuts down, it sends again what it had not started
(``worker.resend_reserved``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from celery import Celery

from ..persistence.base import Held, HeldMessage
from .dispatch import SENT_AT_HEADER
from .settings import EARLIER_STEP_TASK

log = logging.getLogger("ruvon.held")

#: The producers' tasks (``tasks.START_TASK`` and its siblings).
WIRE_TASKS = frozenset({"ruvon.start_workflow", "ruvon.resume_workflow",
                        "ruvon.cancel_workflow"})


def is_step_task(name: str) -> bool:
    return name == EARLIER_STEP_TASK or name.startswith(EARLIER_STEP_TASK + ".")


def held_requests(*, active: bool = True) -> list[Any]:
    """The requests this worker holds: running (with ``active``), reserved, and waiting
    on a countdown."""
    from celery.worker import state

    for _ in range(3):  # the consumer thread may change the sets while they are read
        try:
            found = {id(r): r for r in (*state.reserved_requests,
                                        *getattr(state, "scheduled_requests", ()))}
            running = {r.id for r in state.active_requests}
            if active:
                found.update((id(r), r) for r in state.active_requests)
            else:
                found = {k: r for k, r in found.items() if r.id not in running}
            return list(found.values())
        except RuntimeError:
            continue
    return []


def held_steps(requests: Iterable[Any]) -> list[Held]:
    """The steps and branches among ``requests``."""
    held: dict[Held, None] = {}
    for request in requests:
        if not is_step_task(str(request.name)):
            continue
        kwargs = request.kwargs or {}
        try:
            branch = kwargs.get("branch")
            held[(str(kwargs["workflow_id"]), int(kwargs["version"]),
                  None if branch is None else int(branch))] = None
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # a malformed message: its task refuses it
    return list(held)


def held_messages(requests: Iterable[Any]) -> list[HeldMessage]:
    """The producers' messages among ``requests``, as :func:`send_again` takes them."""
    return [message_of(r) for r in requests if r.name in WIRE_TASKS]


def message_of(request: Any) -> HeldMessage:
    """A held request as it would be sent again: its task, id, kwargs, queue, priority
    and countdown."""
    delivery = request.delivery_info or {}
    eta = request.eta
    if isinstance(eta, dt.datetime):
        eta = eta.isoformat()
    return {"task": str(request.name), "id": str(request.id),
            "kwargs": dict(request.kwargs or {}), "queue": delivery.get("routing_key"),
            "priority": delivery.get("priority"), "eta": eta}


def send_again(app: Celery, message: HeldMessage) -> None:
    """Send a held message again, under its own task id (a start sent again finds the
    workflow the first one made; a step sent again is a no-op if it ran)."""
    options: dict[str, Any] = {"task_id": message["id"], "ignore_result": True,
                               "headers": {SENT_AT_HEADER: dt.datetime.now(dt.UTC)
                                           .timestamp()}}
    if message.get("queue"):
        options["queue"] = message["queue"]
    if message.get("priority") is not None:
        options["priority"] = message["priority"]
    if message.get("eta"):
        eta = dt.datetime.fromisoformat(str(message["eta"]))
        if eta > dt.datetime.now(dt.UTC if eta.tzinfo else None):
            options["eta"] = eta
    app.send_task(message["task"], kwargs=message.get("kwargs") or {}, **options)


def send_all_again(app: Celery, messages: Iterable[HeldMessage]) -> tuple[int, int]:
    """Send each message again; ``(sent, failed)`` (a failure is logged)."""
    sent = failed = 0
    for message in messages:
        try:
            send_again(app, message)
            sent += 1
        except Exception as exc:
            failed += 1
            log.warning("could not send %s %s again: %s", message.get("task"),
                        message.get("id"), exc)
    return sent, failed
