"""Publish step messages. A message carries ids only, never the state."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery

from ..definitions import Registry
from .settings import EARLIER_STEP_TASK, FleetSettings, step_task_name

log = logging.getLogger("ruvon.dispatch")

#: Message header with the epoch time a step was sent (the queue-lag metric reads it).
SENT_AT_HEADER = "ruvon_sent_at"


class Dispatcher:
    def __init__(self, app: Celery, registry: Registry, settings: FleetSettings):
        self.app = app
        self.registry = registry
        self.settings = settings

    def step(self, workflow_type: str, step_name: str, workflow_id: str, version: int,
             countdown: float | None = None, branch: int | None = None) -> None:
        """Send ``step`` of workflow ``workflow_id`` as dispatched for ``version`` (or one
        ``branch`` of a PARALLEL step)."""
        defn = self.registry.get(workflow_type)
        if defn.has_step(step_name):
            step = defn.step(step_name)
            task = step_task_name(workflow_type, step_name)
            options: dict[str, Any] = {"queue": self.settings.queue_for(step)}
            if step.priority is not None:
                options["priority"] = step.priority
        else:  # only the definition the run started with has it
            task = EARLIER_STEP_TASK
            options = {"queue": self.settings.default_queue}
        if countdown and countdown > 0:
            options["countdown"] = countdown
        options["headers"] = {SENT_AT_HEADER: time.time()}
        kwargs: dict[str, Any] = {"workflow_id": workflow_id, "step": step_name,
                                  "version": version}
        kwargsrepr = (f"{{'workflow_id': '{workflow_id}', 'step': '{step_name}', "
                      f"'version': {version}")
        if branch is not None:
            kwargs["branch"] = branch
            kwargsrepr += f", 'branch': {branch}"
        self.app.send_task(
            task,
            kwargs=kwargs,
            ignore_result=True,
            # Celery would saferepr() the arguments on every send; these are what Flower
            # shows and searches, built for a fraction of the cost.
            argsrepr="()",
            # Queues hang off the default exchange and workers declare the queues they
            # consume: re-declaring on every send only costs time.
            declare=[],
            kwargsrepr=kwargsrepr + "}",
            **options,
        )
