"""The recovery sweep and the scheduler: what every worker runs in the background
(see ``background``), through the coordinator."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..scheduling import fire_due

if TYPE_CHECKING:
    from .coordinator import Coordinator

log = logging.getLogger("ruvon.coordinator")


async def sweep(coordinator: Coordinator, limit: int = 500) -> int:
    """Re-send every step whose lease (or retry delay) expired; return how many."""
    store, settings = coordinator.persistence, coordinator.settings
    # Workers that stopped beating: what they held (and what they may have just taken)
    # is due now, so this very sweep sends it again.
    gone, made_due = await store.reap_workers(settings.worker_silent,
                                              window=2 * settings.worker_beat)
    if gone:
        log.warning("%d worker(s) stopped beating; %d step(s) they held are sent again",
                    gone, made_due)
    # Only types this worker can run: a row it would skip must stay due for a worker
    # that has the type, not wait another lease (fleets split by registry).
    due = await store.claim_due(lease_seconds=settings.lease_seconds, limit=limit,
                                workflow_types=list(coordinator.registry.workflows))
    sent = 0
    for item in due:
        lease = coordinator.leases.for_step(item.workflow_type, item.step)
        if lease > settings.lease_seconds:
            # The claim leased it for the sweep's period; this step may run longer.
            await store.extend_due(item, lease)
        try:
            coordinator.dispatcher.step(item.workflow_type, item.step, item.workflow_id,
                                        item.version, branch=item.branch)
            sent += 1
        except Exception:
            log.exception("sweep: re-sending %s/%s failed", item.workflow_id, item.step)
    coordinator.notify("swept", sent=sent)
    if sent:
        log.info("recovery sweep re-sent %d step(s)", sent)
    return sent


async def fire_schedules(coordinator: Coordinator) -> int:
    """Start the workflows of schedules whose tick has come (see ``scheduling``)."""
    async def start(workflow_type: str, data: dict[str, Any], key: str) -> str:
        record, _ = await coordinator.start(workflow_type, data, internal_key=key)
        return record.id

    return await fire_due(coordinator.persistence, start,
                          workflow_types=list(coordinator.registry.workflows))
