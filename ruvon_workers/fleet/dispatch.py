"""Publish step messages. A message carries ids only, never the state."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from ..definitions import Registry
from .settings import FleetSettings, step_task_name

log = logging.getLogger("ruvon.dispatch")


class Dispatcher:
    def __init__(self, app: Celery, registry: Registry, settings: FleetSettings):
        self.app = app
        self.registry = registry
        self.settings = settings

    def step(self, workflow_type: str, step_name: str, workflow_id: str, version: int,
             countdown: float | None = None) -> None:
        """Send ``step`` of workflow ``workflow_id`` as dispatched for ``version``."""
        step = self.registry.get(workflow_type).step(step_name)
        options: dict[str, Any] = {"queue": self.settings.queue_for(step)}
        if step.priority is not None:
            options["priority"] = step.priority
        if countdown and countdown > 0:
            options["countdown"] = countdown
        self.app.send_task(
            step_task_name(workflow_type, step_name),
            kwargs={"workflow_id": workflow_id, "step": step_name, "version": version},
            ignore_result=True,
            **options,
        )
