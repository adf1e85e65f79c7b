from models import OrderState
from ruvon.models import StepContext


def receive_order(state: OrderState, context: StepContext) -> dict:
    state.trail.append("Receive_Order")
    total = sum(item["qty"] * item["price"] for item in state.items)
    return {"total": total}


# PARALLEL tasks get the state as a plain dict (a snapshot) and run in worker threads.
def check_inventory(state: dict, context: StepContext) -> dict:
    in_stock = all(not item["sku"].startswith("OUT-") for item in state["items"])
    return {"inventory_ok": in_stock, "last_check": context.step_name}


def verify_payment(state: dict, context: StepContext) -> dict:
    return {"payment_ok": state["total"] < 1000, "last_check": context.step_name}


def score_fraud(state: dict, context: StepContext) -> dict:
    return {"fraud_score": 0.12 if state["total"] < 500 else 0.7, "last_check": context.step_name}


def decide(state: OrderState, context: StepContext) -> dict:
    state.trail.append("Decide")
    ok = state.inventory_ok and state.payment_ok and (state.fraud_score or 1.0) < 0.5
    return {"decision": "accept" if ok else "reject"}
