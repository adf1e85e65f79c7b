"""The recovery sweep and the scheduler: what every worker runs in the background
(see ``background``), through the coordinator."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..scheduling import fire_due
from .epoch import queued_steps
from .held import send_all_again

if TYPE_CHECKING:
    from .coordinator import Coordinator

log = logging.getLogger("ruvon.coordinator")


#: The most rows one claim takes; a sweep claims again, after ``BATCH_PAUSE`` seconds,
#: while its claims come back full (after a broker lost its messages, thousands of steps
#: are due at once: they go out in a few seconds, without flooding the broker).
BATCH = 500
BATCH_PAUSE = 0.05
MAX_BATCHES = 100


async def sweep(coordinator: Coordinator, limit: int = BATCH) -> int:
    """Send again what workers that died held, and every step whose lease (or retry
    delay) expired; return how many steps were sent."""
    store, settings = coordinator.persistence, coordinator.settings
    await reap(coordinator)
    sent = 0
    for batch in range(MAX_BATCHES):
        if batch:
            await asyncio.sleep(BATCH_PAUSE)
        # Only types this worker can run: a row it would skip must stay due for a worker
        # that has the type, not wait another lease (fleets split by registry).
        due = await store.claim_due(lease_seconds=settings.lease_seconds, limit=limit,
                                    workflow_types=list(coordinator.registry.workflows))
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
        if len(due) < limit:
            break
    coordinator.notify("swept", sent=sent)
    if sent:
        log.info("recovery sweep re-sent %d step(s)", sent)
    return sent


async def reap(coordinator: Coordinator) -> None:
    """Workers that stopped beating: what they held (and what they may have just taken)
    is due now, so this very sweep sends it again; the producers' messages they held
    are sent again here, then the workers are forgotten. If sending fails, a later sweep
    takes them again (``reap_workers``' ``retake``)."""
    store, settings = coordinator.persistence, coordinator.settings
    reaped = await store.reap_workers(settings.worker_silent, window=2 * settings.worker_beat)
    if not reaped.workers:
        return
    app = coordinator.dispatcher.app
    _, failed = send_all_again(app, reaped.messages)
    # What a worker took after its last beat is in neither its record nor the broker.
    unaccounted = 0
    try:
        queued = await asyncio.to_thread(queued_steps, app.conf.broker_write_url
                                         or app.conf.broker_url, fleet_queues(app))
        if queued is not None:
            unaccounted = await store.due_unaccounted(queued)
    except Exception as exc:  # the broker may be down: the reap's window still applies
        log.warning("could not read the broker's queues after a worker died: %s", exc)
    log.warning("%d worker(s) stopped beating; %d step(s) they held are sent again, %d "
                "that were nowhere else, and %d producer message(s)", len(reaped.workers),
                reaped.made_due, unaccounted, len(reaped.messages) - failed)
    if failed:
        return
    for name in reaped.workers:
        await store.forget_worker(name)


def fleet_queues(app: Any) -> list[str]:
    """Every queue the fleet's steps go to (the default one and each step's own)."""
    settings, registry = app.ruvon_settings, app.ruvon_registry
    return sorted({settings.default_queue} | {settings.queue_for(s) for d in registry
                                              for s in d.all_steps})


async def fire_schedules(coordinator: Coordinator) -> int:
    """Start the workflows of schedules whose tick has come (see ``scheduling``)."""
    async def start(workflow_type: str, data: dict[str, Any], key: str) -> str:
        record, _ = await coordinator.start(workflow_type, data, internal_key=key)
        return record.id

    return await fire_due(coordinator.persistence, start,
                          workflow_types=list(coordinator.registry.workflows))
