from models import OrderState
from ruvon.models import StepContext


def check_order_amount(state: OrderState, context: StepContext) -> dict:
    state.trail.append("Check_Order_Amount")
    return {"review_required": state.amount > 10000}


def manual_review(state: OrderState, context: StepContext) -> dict:
    state.trail.append("Manual_Review")
    return {"reviewed": True}


def check_region(state: OrderState, context: StepContext) -> dict:
    state.trail.append("Check_Region")
    return {"is_domestic": state.country == "US"}


def international_shipping(state: OrderState, context: StepContext) -> dict:
    state.trail.append("International_Shipping")
    return {"shipping": "international"}


def auto_process(state: OrderState, context: StepContext) -> dict:
    state.trail.append("Auto_Process")
    return {"processed": True, "shipping": state.shipping or "domestic"}
