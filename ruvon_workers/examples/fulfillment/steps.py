"""Step functions of the order fulfillment example. Plain functions: state in, dict of
changes out (or changes made to the state in place)."""

from __future__ import annotations

import hashlib
from typing import Any

from ruvon_workers import StartSubWorkflowDirective, StepContext

from .models import CustomerEmailState, FulfillmentState, ShipmentState, StockReportState

CREDIT_LIMIT = 5000.0
HIGH_RISK_SCORE = 50
UNITS_PER_PARCEL = 4
SERVED_COUNTRIES = {"DE", "FR", "NL", "BE", "AT", "IT", "ES", "US", "GB"}
# What the stock report counts (a real one would ask the warehouse system).
STOCK_LEVELS = {"book": 140, "mug": 8, "lamp": 3, "poster": 55, "laptop": 12}
REORDER_LEVEL = 10


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


# -- OrderFulfillment ---------------------------------------------------------------

def validate_order(state: FulfillmentState, context: StepContext) -> dict:
    total = round(sum(line.quantity * line.unit_price for line in state.lines), 2)
    units = sum(line.quantity for line in state.lines)
    state.log.append(f"validated {len(state.lines)} line(s), {total:.2f} {state.currency}")
    return {"total": total, "units": units}


# Screen_Order: three checks run in parallel, each on its own copy of the state; their
# "checks" dicts are merged (DEEP) in the order the tasks are declared.

# PARALLEL tasks get a copy of the state as a dict (Ruvon's convention) and return what
# they add to it.

def check_credit(state: dict[str, Any], context: StepContext) -> dict:
    return {"checks": {"credit": "ok" if state["total"] <= CREDIT_LIMIT else "over limit"}}


def score_fraud(state: dict[str, Any], context: StepContext) -> dict:
    score = 10
    score += 60 if state["total"] > 1000 else 0
    score += 30 if state["ship_to_country"] != state["billing_country"] else 0
    return {"checks": {"fraud_score": score},
            "risk": "high" if score >= HIGH_RISK_SCORE else "low"}


def verify_address(state: dict[str, Any], context: StepContext) -> dict:
    served = state["ship_to_country"] in SERVED_COUNTRIES
    return {"checks": {"address": "ok" if served else "not served"}}


# Inserted after Screen_Order by dynamic_injection when risk == "high".

def manual_review(state: FulfillmentState, context: StepContext) -> dict:
    state.log.append(f"risk {state.checks.get('fraud_score')}: reviewed by fraud-desk")
    return {"reviewed_by": "fraud-desk"}


def require_signature(state: FulfillmentState, context: StepContext) -> dict:
    state.log.append("signature on delivery required")
    return {"signature_required": True}


def reserve_line(state: dict[str, Any], context: StepContext, line: dict[str, Any]) -> dict:
    """One PARALLEL branch per order line (``line`` is the line as stored, a dict)."""
    reservation = f"RSV-{state['warehouse']}-{line['sku']}-{line['quantity']}"
    return {"reservations": {line["sku"]: reservation}}


# Pick_Lines: the LOOP body runs both functions for each line, in order.

def pick_line(state: FulfillmentState, context: StepContext, line: dict[str, Any]) -> None:
    state.picked.append(f"{line['quantity']}x {line['sku']}")  # in place: kept


def weigh_line(state: FulfillmentState, context: StepContext, line: dict[str, Any]) -> dict:
    return {"weight_kg": round(state.weight_kg + line["quantity"] * line["weight_kg"], 3)}


def gift_wrap(state: FulfillmentState, context: StepContext) -> dict:
    state.log.append("gift wrapped")
    return {"gift_wrapped": True, "weight_kg": round(state.weight_kg + 0.2, 3)}


def ship(state: FulfillmentState, context: StepContext) -> None:
    """Hand the parcels to the Shipment sub-workflow; this workflow waits for it."""
    quote = (state.carrier_quote or {}).get("body") or {}
    state.log.append(f"quoted {quote.get('price')} {quote.get('currency')} "
                     f"by {quote.get('carrier')}")
    raise StartSubWorkflowDirective("Shipment", {
        "order_id": state.order_id, "carrier": quote.get("carrier", "unknown"),
        "service": quote.get("service", "standard"), "units": state.units,
        "signature_required": state.signature_required})


def record_shipment(state: FulfillmentState, context: StepContext) -> dict:
    # sub_workflow_results files each finished child under its id (as Ruvon does).
    shipment = next(child["state"] for child in state.sub_workflow_results.values()
                    if child["workflow_type"] == "Shipment")
    state.log.append(f"shipped in {len(shipment['parcels'])} parcel(s): "
                     f"{shipment['tracking_number']}")
    return {"tracking_number": shipment["tracking_number"],
            "parcels": len(shipment["parcels"])}


# -- Shipment (the sub-workflow) ----------------------------------------------------

def pack_parcel(state: ShipmentState, context: StepContext) -> dict:
    """One WHILE iteration: put up to UNITS_PER_PARCEL units in a new parcel."""
    units = min(UNITS_PER_PARCEL, state.units - state.packed_units)
    state.parcels.append({"parcel": len(state.parcels) + 1, "units": units})
    return {"packed_units": state.packed_units + units}


def book_carrier(state: ShipmentState, context: StepContext) -> dict:
    prefix = "".join(c for c in state.carrier.upper() if c.isalpha())[:3] or "TRK"
    return {"tracking_number": f"{prefix}-{state.order_id}-{len(state.parcels)}"}


# -- CustomerEmail (started by FIRE_AND_FORGET) -------------------------------------

async def send_email(state: CustomerEmailState, context: StepContext) -> dict:
    body = (f"Hello, your order {state.order_id} is on its way. "
            f"Tracking number: {state.tracking_number}.")
    # Stable across redeliveries of this step: a mail API would send the message once.
    return {"body": body, "message_id": f"msg-{_digest(context.idempotency_key)}"}


# -- StockReport (started by the CRON schedule) -------------------------------------

def count_stock(state: StockReportState, context: StepContext) -> dict:
    return {"low_stock": sorted(sku for sku, n in STOCK_LEVELS.items() if n < REORDER_LEVEL)}


def publish_report(state: StockReportState, context: StepContext) -> dict:
    return {"published": True}
