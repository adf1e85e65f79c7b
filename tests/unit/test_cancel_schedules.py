"""Cancelling a run deletes the CRON schedules it created (``created_by``), on the fleet
and in-process; schedules of other runs, and of none, are kept."""

from __future__ import annotations

import datetime as dt

from ruvon_workers.persistence import MemoryPersistenceProvider
from ruvon_workers.persistence.rows import ScheduleSpec

from .test_bounded_input import _coordinator, _waiting_child


def _spec(name: str, created_by: str | None) -> ScheduleSpec:
    return ScheduleSpec(name, "Ticked", "0 3 * * *", {},
                        dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), created_by)


async def test_cancel_on_the_fleet_deletes_the_schedules_the_run_created() -> None:
    coordinator, _ = _coordinator()
    store = coordinator.persistence
    run, _ = await coordinator.start("Crashy", {})
    other, _ = await coordinator.start("Crashy", {})
    for spec in (_spec("mine-a", run.id), _spec("mine-b", run.id),
                 _spec("theirs", other.id), _spec("nobodys", None)):
        await store.upsert_schedule(spec)
    cancelled = await coordinator.cancel(run.id, "no longer needed")
    assert cancelled.status == "CANCELLED"
    assert [s.name for s in await store.list_schedules()] == ["nobodys", "theirs"]


async def test_cancel_in_process_deletes_the_schedules_the_run_created() -> None:
    store = MemoryPersistenceProvider()
    wf = await _waiting_child(store)
    await store.upsert_schedule(_spec("mine", wf.id))
    await store.upsert_schedule(_spec("kept", None))
    await wf.cancel("stop")
    assert wf.status == "CANCELLED"
    assert [s.name for s in await store.list_schedules()] == ["kept"]
