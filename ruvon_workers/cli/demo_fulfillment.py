"""The order fulfillment part of ``ruvon-workers demo``: three orders through the example
that uses every step type, and a table of what each step type did for each of them."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..client import Client
from ..engine.records import HistoryEntry
from .output import EXIT_FAILED, console, fail, table

WORKFLOW = "OrderFulfillment"
#: The demo's carrier API checks it; the HTTP step sends it as ``{{ secrets.CARRIER_TOKEN }}``.
DEMO_CARRIER_TOKEN = "demo-carrier-token"


def fulfillment_orders(carrier_url: str) -> list[tuple[str, dict[str, Any]]]:
    def line(sku: str, quantity: int, price: float, kg: float) -> dict[str, Any]:
        return {"sku": sku, "quantity": quantity, "unit_price": price, "weight_kg": kg}

    base = {"customer_email": "ada@example.com", "carrier_api_url": carrier_url}
    return [
        ("F-1 plain", {**base, "order_id": "F-1", "customer_id": "c-1",
                       "lines": [line("book", 2, 12.5, 0.6), line("poster", 1, 9.0, 0.2)]}),
        ("F-2 gift", {**base, "order_id": "F-2", "customer_id": "c-2", "gift_wrap": True,
                      "lines": [line("mug", 3, 9.0, 0.4)]}),
        ("F-3 flagged", {**base, "order_id": "F-3", "customer_id": "c-3",
                         "ship_to_country": "FR", "billing_country": "DE",
                         "lines": [line("laptop", 1, 1499.0, 2.2), line("mug", 2, 9.0, 0.4),
                                   line("book", 4, 12.5, 0.6)]}),
    ]


def run_fulfillment(client: Client, carrier_url: str) -> tuple[list[_Order], float]:
    """Start the orders and wait for them and the workflows they start."""
    started = time.monotonic()
    ids = [(label, client.start(WORKFLOW, data)) for label, data in fulfillment_orders(carrier_url)]
    _wait(client, [wid for _, wid in ids], "Running order fulfillment")
    emails = [client.get(wid).state.get("email_workflow_id") for _, wid in ids]
    _wait(client, [e for e in emails if e], "Sending customer emails")
    return [_Order(client, label, wid) for label, wid in ids], time.monotonic() - started


def print_fulfillment(orders: list[_Order], elapsed: float) -> None:
    """A row per step type, a column per order; then a one-line summary."""
    table("Order fulfillment: what each step type did", ["step type", "step",
                                                         *(o.label for o in orders)],
          [(kind, step, *(_cell(what, o) for o in orders)) for kind, step, what in _ROWS])
    statuses = Counter(o.info.status for o in orders)
    started = Counter(f"{info.workflow_type} {info.status}"
                      for o in orders for info in (o.child, o.email) if info)
    console.print(f"\n{len(orders)} {WORKFLOW} workflows in {elapsed:.1f}s: "
                  + ", ".join(f"{n} {s}" for s, n in statuses.items())
                  + "; the workflows they started: "
                  + ", ".join(f"{n} {s}" for s, n in started.items()))


def _wait(client: Client, ids: list[str], description: str) -> None:
    pending = set(ids)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task(description, total=len(ids))
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for wid in list(pending):
                if client.get(wid).finished:
                    pending.discard(wid)
                    progress.advance(bar)
            time.sleep(0.05)
    if pending:
        fail(f"{len(pending)} workflow(s) did not finish in time; see the worker log",
             EXIT_FAILED)


class _Order:
    """One order's outcome, as the table reads it."""

    def __init__(self, client: Client, label: str, wid: str):
        self.label = label
        self.info = client.get(wid)
        self.state = self.info.state
        self.history: list[HistoryEntry] = client.history(wid)
        self.steps = [h.step for h in self.history if h.status == "COMPLETED"]
        child_id = self.detail("Ship").get("sub_workflow")
        self.child = client.get(child_id) if child_id else None
        email_id = self.state.get("email_workflow_id")
        self.email = client.get(email_id) if email_id else None

    def detail(self, step: str) -> dict[str, Any]:
        return next((h.detail or {} for h in self.history
                     if h.step == step and h.status == "COMPLETED"), {})


def _cell(what: Any, order: _Order) -> str:
    try:
        return str(what(order))
    except (KeyError, TypeError, ValueError):  # the order failed before that step
        return "-"


def _short(wid: str) -> str:
    return wid[:8]


def _count(n: int, noun: str) -> str:
    plural = "es" if noun.endswith("ch") else "s"
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{plural}"


def _next_run(order: _Order) -> str:
    detail = order.detail("Schedule_Stock_Report")
    if not detail:
        return "-"
    when = dt.datetime.fromisoformat(detail["next_run_at"])
    return f"{detail['schedule']}, next {when:%H:%M} UTC"


def _quote(order: _Order) -> str:
    quote = order.state.get("carrier_quote") or {}
    body = quote.get("body") or {}
    return f"{quote.get('status_code')}: {body.get('carrier')} {body.get('price'):.2f} EUR"


def _shipment(order: _Order) -> str:
    child = order.child
    return f"Shipment {_short(child.id)} {child.status}" if child else "-"


def _email(order: _Order) -> str:
    email = order.email
    return f"CustomerEmail {_short(email.id)} {email.status}" if email else "-"


# (step type, step, what it did for one order)
_ROWS: list[tuple[str, str, Any]] = [
    ("STANDARD", "Validate_Order",
     lambda o: f"{o.state['units']} units, {o.state['total']:.2f} EUR"),
    ("PARALLEL tasks", "Screen_Order",
     lambda o: f"{len(o.state['checks'])} checks: {o.state['risk']} risk "
               f"({o.state['checks']['fraud_score']})"),
    ("dynamic_injection", "Manual_Review, Require_Signature",
     lambda o: "inserted: reviewed, signature" if "Manual_Review" in o.steps else "-"),
    ("PARALLEL iterate_over", "Reserve_Stock",
     lambda o: f"{_count(len(o.state['reservations']), 'line')} reserved, "
               f"{_count(o.detail('Reserve_Stock').get('branches', 0), 'branch')}"),
    ("LOOP ITERATE", "Pick_Lines",
     lambda o: f"{_count(len(o.state['picked']), 'line')} picked, {o.state['weight_kg']:g} kg"),
    ("DECISION", "Needs_Gift_Wrap", lambda o: f"-> {o.detail('Needs_Gift_Wrap').get('next')}"),
    ("HTTP", "Quote_Shipping", _quote),
    ("sub-workflow", "Ship", _shipment),
    ("LOOP WHILE (Shipment)", "Pack_Parcels",
     lambda o: f"{_count(o.state['parcels'], 'parcel')}, {o.state['tracking_number']}"),
    ("FIRE_AND_FORGET", "Notify_Customer", _email),
    ("CRON_SCHEDULE", "Schedule_Stock_Report", _next_run),
]
