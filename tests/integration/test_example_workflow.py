"""The example order workflow reaches each of its ends, on both stores."""

from __future__ import annotations

import pytest

from ruvon_workers import SagaWorkflowException, WorkflowBuilder, WorkflowFailedException
from ruvon_workers.examples.orders.models import OrderState
from ruvon_workers.execution import SyncExecutionProvider

SYNC = SyncExecutionProvider()


def order(amount: float, country: str = "DE") -> dict:
    return {"order_id": "o-1", "customer_id": "c-1", "ship_to_country": country,
            "items": [{"sku": "x", "quantity": 1, "unit_price": amount}]}


async def drive(wf, approval: dict | None = None) -> None:
    while wf.status in ("ACTIVE", "WAITING_HUMAN"):
        await wf.next_step(approval if wf.status == "WAITING_HUMAN" else None)


async def test_completes(builder: WorkflowBuilder, persistence) -> None:
    wf = await builder.create_workflow("OrderProcessing", order(20),
                                       persistence_provider=persistence, execution_provider=SYNC)
    await drive(wf)
    assert wf.status == "COMPLETED"
    assert isinstance(wf.state, OrderState)
    assert wf.state.charged and wf.state.tracking_number == "TRK-o-1"
    # A new process would see the same thing: load it back from the store.
    again = await builder.load_workflow(wf.id, persistence_provider=persistence,
                                        execution_provider=SYNC)
    assert again.status == "COMPLETED" and again.state == wf.state
    steps = [h.step for h in await wf.history() if h.status == "COMPLETED"]
    assert steps == ["Validate_Order", "Check_Amount", "Charge_Payment", "Ship_Order",
                     "Send_Confirmation"]


async def test_pauses_for_approval_then_completes(builder: WorkflowBuilder, persistence) -> None:
    wf = await builder.create_workflow("OrderProcessing", order(5000),
                                       persistence_provider=persistence, execution_provider=SYNC)
    await wf.next_step()
    await wf.next_step()
    assert wf.status == "WAITING_HUMAN" and wf.current_step_name == "Manager_Approval"
    # Resume after a "restart": load from the store, not from memory.
    wf = await builder.load_workflow(wf.id, persistence_provider=persistence,
                                     execution_provider=SYNC)
    await drive(wf, {"approved": True, "approver": "dana"})
    assert wf.status == "COMPLETED" and isinstance(wf.state, OrderState)
    assert wf.state.approved_by == "dana"


async def test_rejected_approval_fails(builder: WorkflowBuilder, persistence) -> None:
    wf = await builder.create_workflow("OrderProcessing", order(5000),
                                       persistence_provider=persistence, execution_provider=SYNC)
    with pytest.raises(WorkflowFailedException, match="rejected by sam"):
        await drive(wf, {"approved": False, "approver": "sam"})
    assert wf.status == "FAILED_ROLLED_BACK" and isinstance(wf.state, OrderState)
    assert not wf.state.charged


async def test_rolls_back_when_shipping_fails(builder: WorkflowBuilder, persistence) -> None:
    wf = await builder.create_workflow("OrderProcessing", order(20, "ZZ"),
                                       persistence_provider=persistence, execution_provider=SYNC)
    with pytest.raises(SagaWorkflowException):
        await drive(wf)
    assert wf.status == "FAILED_ROLLED_BACK" and isinstance(wf.state, OrderState)
    assert wf.state.refunded and not wf.state.charged
    assert wf.error is not None
    assert wf.error["step"] == "Ship_Order" and wf.error["compensated"] == ["Charge_Payment"]
    rows = [(h.step, h.status) for h in await wf.history()]
    assert ("Charge_Payment", "COMPENSATED") in rows
    # The compensation's row says what it changed in the state (in place, as on Ruvon).
    undone, = [h.detail for h in await wf.history() if h.status == "COMPENSATED"]
    assert undone is not None
    assert sorted(undone["changed"]) == ["charged", "log", "refunded"]
    assert undone["changed"]["refunded"] is True and undone["changed"]["charged"] is False


async def test_cancelled(builder: WorkflowBuilder, persistence) -> None:
    wf = await builder.create_workflow("OrderProcessing", order(5000),
                                       persistence_provider=persistence, execution_provider=SYNC)
    await wf.next_step()
    await wf.cancel("duplicate order")
    loaded = await builder.load_workflow(wf.id, persistence_provider=persistence,
                                         execution_provider=SYNC)
    assert loaded.status == "CANCELLED" and loaded.error is not None \
        and loaded.error["message"] == "duplicate order"
