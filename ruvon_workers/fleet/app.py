"""The fleet's Celery application: configuration and one task per step.

``create_app()`` reads ``CELERY_BROKER_URL`` and ``RUVON_REGISTRY``; the module-level
``app`` (``celery -A ruvon_workers.fleet.app``) is built on first access.

The parts live next to it: :mod:`.celery_config` (what Celery is told: serialization,
acknowledgement, queues, transport options), :mod:`.tasks` (the step tasks and the wire
tasks) and :mod:`.failure_hooks` (a step's pool process lost or killed at its time limit).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from ..definitions import Registry, load_registry
from ..settings import broker_url, registry_path
from ..utils.loop import install_uvloop
from .celery_config import celery_config
from .failure_hooks import StepRequest, StepTask
from .settings import FleetSettings
from .tasks import CANCEL_TASK, RESUME_TASK, START_TASK, register_tasks

__all__ = ["CANCEL_TASK", "RESUME_TASK", "START_TASK", "StepRequest", "StepTask",
           "create_app"]


@signals.worker_init.connect(weak=False)
def _worker_event_loop(**_: Any) -> None:
    # A worker started as `celery -A ruvon_workers.fleet.app worker` (not through the
    # ruvon-workers command) installs uvloop too, before its pool processes fork.
    install_uvloop()


def create_app(registry: Registry | None = None, broker: str | None = None,
               settings: FleetSettings | None = None) -> Celery:
    registry = registry or load_registry(registry_path())
    settings = settings or FleetSettings.from_env()
    url = broker_url(broker)
    app = Celery("ruvon_workers", broker=url, set_as_current=False)
    app.conf.update(celery_config(url, registry, settings))
    app.ruvon_registry = registry
    app.ruvon_settings = settings
    register_tasks(app, registry)
    return app


_app: Celery | None = None


def __getattr__(name: str) -> Any:
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)
