"""The order fulfillment example (every step type) in-process, on both stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ruvon_workers import WorkflowBuilder, WorkflowFailedException
from ruvon_workers.examples.fulfillment.carrier import CarrierAPI, carrier_api
from ruvon_workers.execution import SyncExecutionProvider

TOKEN = "carrier-s3cret"
SYNC = SyncExecutionProvider()


@pytest.fixture
def carrier(monkeypatch: pytest.MonkeyPatch) -> Iterator[CarrierAPI]:
    monkeypatch.setenv("RUVON_SECRET_CARRIER_TOKEN", TOKEN)
    monkeypatch.setenv("RUVON_HTTP_ALLOWED_HOSTS", "127.0.0.1")  # the carrier's address
    with carrier_api(token=TOKEN) as api:
        yield api


def order(carrier: CarrierAPI, *, flagged: bool = False) -> dict:
    """A small domestic order, or (``flagged``) a large gift shipped abroad."""
    lines = [{"sku": "book", "quantity": 2, "unit_price": 12.5, "weight_kg": 0.6}]
    if flagged:
        lines += [{"sku": "laptop", "quantity": 1, "unit_price": 1499.0, "weight_kg": 2.2},
                  {"sku": "mug", "quantity": 6, "unit_price": 9.0, "weight_kg": 0.4}]
    return {"order_id": "F-9" if flagged else "F-1", "customer_id": "c-1",
            "customer_email": "ada@example.com", "lines": lines,
            "ship_to_country": "FR" if flagged else "DE", "billing_country": "DE",
            "gift_wrap": flagged, "carrier_api_url": carrier.url}


async def run(builder: WorkflowBuilder, persistence, data: dict,
              workflow_type: str = "OrderFulfillment"):
    wf = await builder.create_workflow(workflow_type, data, persistence_provider=persistence,
                                       execution_provider=SYNC)
    while wf.status == "ACTIVE":
        await wf.next_step()
    return wf


async def completed_steps(wf) -> list[str]:
    return [h.step for h in await wf.history() if h.status == "COMPLETED"]


async def test_flagged_order_shows_every_step_type(builder, persistence, carrier) -> None:
    wf = await run(builder, persistence, order(carrier, flagged=True))
    assert wf.status == "COMPLETED", wf.error
    state = wf.state
    # PARALLEL (tasks): three checks merged DEEP into one dict; high risk ...
    assert state.checks == {"credit": "ok", "fraud_score": 100, "address": "ok"}
    assert state.risk == "high"
    # ... so dynamic_injection ran the review steps right after the screening.
    assert state.reviewed_by == "fraud-desk" and state.signature_required
    steps = await completed_steps(wf)
    assert steps[:5] == ["Validate_Order", "Screen_Order", "Manual_Review", "Require_Signature",
                         "Reserve_Stock"]
    # PARALLEL (iterate_over): one branch per line.
    assert state.reservations == {"book": "RSV-BER-1-book-2", "laptop": "RSV-BER-1-laptop-1",
                                  "mug": "RSV-BER-1-mug-6"}
    branches = [h.detail["branches"] for h in await wf.history()
                if h.step == "Reserve_Stock" and h.status == "COMPLETED"]
    assert branches == [3]
    # LOOP (ITERATE): both body functions ran for each line, in order.
    assert state.picked == ["2x book", "1x laptop", "6x mug"]
    # DECISION routed to Gift_Wrap (+0.2 kg).
    assert state.gift_wrapped and "Gift_Wrap" in steps
    assert state.weight_kg == pytest.approx(1.2 + 2.2 + 2.4 + 0.2)
    # HTTP: the quote from the carrier, with the secret token and an idempotency key.
    assert state.carrier_quote == {"status_code": 200, "body": {
        "carrier": "ParcelCo", "service": "standard", "price": 12.1, "currency": "EUR",
        "days": 2}}
    (path, headers), = carrier.requests
    assert path == "/quote?country=FR&weight_kg=6.0"
    assert headers["Authorization"] == f"Bearer {TOKEN}" and headers["Idempotency-Key"]
    # Sub-workflow: Shipment packed 9 units in 3 parcels (its WHILE loop); its final state
    # is in sub_workflow_results, under the child's id.
    (entry,) = state.sub_workflow_results.values()
    assert entry["workflow_type"] == "Shipment" and entry["status"] == "COMPLETED"
    shipment = entry["state"]
    assert [p["units"] for p in shipment["parcels"]] == [4, 4, 1]
    assert shipment["signature_required"] is True
    assert state.tracking_number == "PAR-F-9-3" and state.parcels == 3
    child_id = next(h.detail["sub_workflow"] for h in await wf.history()
                    if h.step == "Ship" and h.status == "COMPLETED")
    assert list(state.sub_workflow_results) == [child_id]
    child = await persistence.load_workflow(child_id)
    assert child.workflow_type == "Shipment" and child.status == "COMPLETED"
    assert child.parent_id == wf.id
    # FIRE_AND_FORGET: an independent CustomerEmail workflow, its id in the state.
    email = await persistence.load_workflow(state.email_workflow_id)
    assert email.workflow_type == "CustomerEmail" and email.parent_id is None
    assert email.status == "COMPLETED"
    assert email.state["subject"] == "Your order F-9 is on its way"
    assert "PAR-F-9-3" in email.state["body"] and email.state["message_id"].startswith("msg-")
    # CRON_SCHEDULE: the daily stock report is stored for the fleet's schedulers.
    (schedule,) = await persistence.list_schedules()
    assert (schedule.name, schedule.workflow_type, schedule.cron_expression) == (
        "daily-stock-report", "StockReport", "0 6 * * *")
    assert schedule.initial_data == {"warehouse": "BER-1"}
    assert (schedule.next_run_at.hour, schedule.next_run_at.minute) == (6, 0)
    assert steps[-3:] == ["Record_Shipment", "Notify_Customer", "Schedule_Stock_Report"]


async def test_plain_order_skips_review_and_gift_wrap(builder, persistence, carrier) -> None:
    wf = await run(builder, persistence, order(carrier))
    assert wf.status == "COMPLETED", wf.error
    assert wf.state.risk == "low" and wf.state.checks["fraud_score"] == 10
    assert await completed_steps(wf) == [
        "Validate_Order", "Screen_Order", "Reserve_Stock", "Pick_Lines", "Needs_Gift_Wrap",
        "Quote_Shipping", "Ship", "Record_Shipment", "Notify_Customer", "Schedule_Stock_Report"]
    assert wf.state.carrier_quote["body"]["price"] == 7.3  # 4.90 + 2 started kg
    assert wf.state.tracking_number == "PAR-F-1-1"
    # A second order updates the one schedule (stored by name).
    await run(builder, persistence, order(carrier, flagged=True))
    assert len(await persistence.list_schedules()) == 1


async def test_the_scheduled_stock_report_runs(builder, persistence, carrier) -> None:
    await run(builder, persistence, order(carrier))
    (schedule,) = await persistence.list_schedules()
    report = await run(builder, persistence, schedule.initial_data, schedule.workflow_type)
    assert report.status == "COMPLETED"
    assert report.state.low_stock == ["lamp", "mug"] and report.state.published


async def test_a_refused_quote_fails_the_order_without_leaking_the_token(
        builder, persistence, carrier, monkeypatch) -> None:
    monkeypatch.setenv("RUVON_SECRET_CARRIER_TOKEN", "wrong-token")
    wf = await builder.create_workflow("OrderFulfillment", order(carrier),
                                       persistence_provider=persistence, execution_provider=SYNC)
    with pytest.raises(WorkflowFailedException, match="returned 401"):
        while wf.status == "ACTIVE":
            await wf.next_step()
    assert wf.status == "FAILED" and wf.current_step_name == "Quote_Shipping"
    assert "bad or missing token" in wf.error["message"]
    assert "wrong-token" not in str(wf.error)
    assert len(carrier.requests) == 1  # a 401 is not retried
