"""Operator requests (resume, cancel, retry) applied to a stored run, racing whatever
else moves it: load, decide, compare-and-set, and again on a lost race."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..definitions.models import WorkflowDefinition
from ..engine import machine
from ..engine.machine import Cancel, JumpTo, Resume, Retry, SetSagaMode
from ..engine.records import WorkflowRecord
from ..engine.transition import Transition
from ..errors import InvalidTransition, StaleStateError, WorkflowNotFound
from ..persistence.base import PersistenceProvider

#: Compare-and-set attempts for operator actions racing the fleet.
CAS_ATTEMPTS = 5


#: ``await definition(record)``: the definition the run started with.
Resolve = Callable[[WorkflowRecord], Awaitable[WorkflowDefinition]]

#: ``due_in(record, transition)``: the lease of the committed row (see ``fleet.leases``).
DueIn = Callable[[WorkflowRecord, Transition], float | None]


def _never(record: WorkflowRecord, transition: Transition) -> float | None:
    return None


async def apply_event(store: PersistenceProvider,
                      definition: Resolve, workflow_id: str,
                      event: Resume | Cancel | Retry | SetSagaMode | JumpTo, *,
                      due_in: DueIn = _never,
                      ) -> tuple[WorkflowRecord, Transition]:
    """Apply ``event`` to the stored run; ``(the run as committed, the transition)``."""
    for _ in range(CAS_ATTEMPTS):
        record = await store.load_workflow(workflow_id)
        if record is None:
            raise WorkflowNotFound(workflow_id)
        defn = await definition(record)
        if isinstance(event, Resume):
            transition = machine.resume(defn, record, event.user_input, event.by)
        elif isinstance(event, Cancel):
            transition = machine.cancel(record, event.reason, event.by)
        elif isinstance(event, SetSagaMode):
            transition = machine.set_saga_mode(record, event.on)
        elif isinstance(event, JumpTo):
            transition = machine.jump_to(defn, record, event.step)
        else:
            transition = machine.retry(defn, record, event.from_step, event.by)
        transition.update.due_in = due_in(record, transition)
        try:
            version = await store.apply(record.id, record.version, transition.update,
                                        transition.history)
        except StaleStateError:
            continue
        return transition.update.applied_to(record, version), transition
    raise StaleStateError(workflow_id, -1)


async def cancel_tree(store: PersistenceProvider,
                      definition: Resolve, workflow_id: str,
                      reason: str, ended: Callable[[WorkflowRecord], Awaitable[None]], *,
                      due_in: DueIn = _never, by: str | None = None) -> WorkflowRecord:
    """Cancel the run, delete the CRON schedules it created, then cancel the
    sub-workflow it waits for (and so on down); ``ended`` is awaited for each run
    cancelled, after its commit. ``by``: who asked, kept in each run's history."""
    record, transition = await apply_event(store, definition, workflow_id,
                                           Cancel(reason, by), due_in=due_in)
    await store.delete_schedules_created_by(record.id)
    await ended(record)
    if transition.cancel_child:
        try:
            await cancel_tree(store, definition, transition.cancel_child,
                              f"parent {record.id} cancelled: {reason}", ended, due_in=due_in,
                              by=by)
        except (InvalidTransition, WorkflowNotFound):
            pass  # it had ended already
    return record
