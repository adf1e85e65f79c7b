from models import InvoiceState
from ruvon.models import StepContext

TAX_RATE = 0.2


def open_invoice(state: InvoiceState, context: StepContext) -> dict:
    state.trail.append("Open_Invoice")
    return {"net": 0.0, "tax": 0.0}


def price_line(state: InvoiceState, context: StepContext) -> dict:
    # Loop bodies get the current element as context.loop_item (and its index).
    line = context.loop_item
    state.trail.append(f"Price_Line[{context.loop_index}]")
    amount = line["qty"] * line["unit_price"]
    return {"net": state.net + amount, "priced": [*state.priced, line["sku"]]}


def add_tax(state: InvoiceState, context: StepContext) -> dict:
    line = context.loop_item
    state.trail.append(f"Add_Tax[{context.loop_index}]")
    return {"tax": round(state.tax + line["qty"] * line["unit_price"] * TAX_RATE, 2)}


def poll_ledger(state: InvoiceState, context: StepContext) -> dict:
    # The ledger never confirms: only max_iterations ends this loop.
    state.trail.append("Poll_Ledger")
    return {"polls": state.polls + 1, "ledger_pending": True}


def close_invoice(state: InvoiceState, context: StepContext) -> dict:
    state.trail.append("Close_Invoice")
    return {"total": round(state.net + state.tax, 2)}
