from models import PaymentState
from ruvon.models import StepContext


class CarrierUnavailable(RuntimeError):
    pass


def create_order(state: PaymentState, context: StepContext) -> dict:
    state.trail.append("Create_Order")
    return {"order_created": True, "status_note": "order created"}


def cancel_order(state: PaymentState, context: StepContext) -> dict:
    # Compensations record themselves in place and also return the undo as a dict.
    state.trail.append("compensate:Create_Order")
    state.compensations_run.append("cancel_order")
    return {"order_created": False, "status_note": "order cancelled"}


def charge_payment(state: PaymentState, context: StepContext) -> dict:
    state.trail.append("Charge_Payment")
    return {"payment_charged": True, "status_note": "payment charged"}


def refund_payment(state: PaymentState, context: StepContext) -> dict:
    state.trail.append("compensate:Charge_Payment")
    state.compensations_run.append("refund_payment")
    return {"payment_charged": False, "status_note": "payment refunded"}


def reserve_inventory(state: PaymentState, context: StepContext) -> dict:
    state.trail.append("Reserve_Inventory")
    return {"inventory_reserved": True, "status_note": "inventory reserved"}


def release_inventory(state: PaymentState, context: StepContext) -> dict:
    state.trail.append("compensate:Reserve_Inventory")
    state.compensations_run.append("release_inventory")
    return {"inventory_reserved": False, "status_note": "inventory released"}


def create_shipment(state: PaymentState, context: StepContext) -> dict:
    state.trail.append("Create_Shipment")
    raise CarrierUnavailable(f"no carrier can take order {state.order_id}")


def cancel_shipment(state: PaymentState, context: StepContext) -> dict:
    state.trail.append("compensate:Create_Shipment")
    state.compensations_run.append("cancel_shipment")
    return {"shipment_created": False}


def send_confirmation(state: PaymentState, context: StepContext) -> dict:
    state.trail.append("Send_Confirmation")
    return {"confirmation_sent": True}
