"""``CeleryExecutionProvider``: every step is a task on the Celery fleet."""

from __future__ import annotations

from typing import Any

from ruvon_workers.execution.celery import CeleryExecutionProvider as _FleetProvider


class CeleryExecutionProvider(_FleetProvider):
    """Hands every step to the fleet (``CELERY_BROKER_URL``, ``RUVON_REGISTRY``); Ruvon's
    ``workflow_builder`` argument is accepted."""

    def __init__(self, workflow_builder: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workflow_builder = workflow_builder


__all__ = ["CeleryExecutionProvider"]
