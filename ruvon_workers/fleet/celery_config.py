"""What the fleet tells Celery: serialization, acknowledgement, queues, transport options.

``create_app()`` (in :mod:`.app`) applies :func:`celery_config` to the app it builds.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from ..definitions import Registry
from ..settings import float_env
from ..utils.serialization import _env_flag
from .settings import FleetSettings


def task_queues(registry: Registry, settings: FleetSettings) -> list[Queue]:
    """The default queue and every step's queue, sorted by name."""
    queues = {settings.default_queue} | {settings.queue_for(s) for d in registry
                                         for s in d.all_steps}
    # Queues hang off the default exchange: a message goes straight to the list named
    # after its queue, with no binding table in Redis to lose (a flushed or restarted
    # Redis would otherwise drop every message published to a named exchange).
    return [Queue(name, exchange=Exchange("", type="direct"), routing_key=name)
            for name in sorted(queues)]


def transport_options(registry: Registry, settings: FleetSettings) -> dict[str, Any]:
    return {
        "visibility_timeout": settings.visibility_timeout(registry),
        "ack_emulation": _env_flag("RUVON_ACK_EMULATION", False),
    }


def celery_config(url: str | None, registry: Registry,
                  settings: FleetSettings) -> dict[str, Any]:
    """The settings ``create_app()`` gives ``app.conf.update``."""
    return dict(
        # Celery lets CELERY_BROKER_URL in the environment win over the broker argument;
        # the read/write URLs make the argument stick.
        broker_read_url=url,
        broker_write_url=url,
        # Only JSON crosses the broker: never pickle.
        task_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        result_serializer="json",
        # Progress lives in PostgreSQL; no result backend is needed.
        task_ignore_result=True,
        result_backend=None,
        # At-least-once: ack after the step committed; a lost worker's message returns.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options(registry, settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.default_queue,
        task_queues=task_queues(registry, settings),
        task_create_missing_queues=True,
        worker_consumer="ruvon_workers.fleet.consumer:SafeConsumer",
        worker_soft_shutdown_timeout=float_env("RUVON_SOFT_SHUTDOWN_TIMEOUT", 60.0),
        worker_enable_soft_shutdown_on_idle=True,
        # Task events cost three extra publishes per step in the worker's main process;
        # they are off unless RUVON_TASK_EVENTS=true. Flower switches them on in the
        # running fleet when it starts (it broadcasts enable_events).
        worker_send_task_events=_env_flag("RUVON_TASK_EVENTS", False),
        task_send_sent_event=False,
    )
