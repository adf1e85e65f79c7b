from models import AuditState, OrderState
from ruvon.models import StepContext


def record_order(state: OrderState, context: StepContext) -> dict:
    state.trail.append("Record_Order")
    return {"recorded": True}


def confirm_order(state: OrderState, context: StepContext) -> dict:
    state.trail.append("Confirm_Order")
    return {"confirmed": True}


def write_audit(state: AuditState, context: StepContext) -> dict:
    state.trail.append("Write_Audit")
    return {"written": True}
