"""Step functions of the order example. Plain functions: state in, dict of changes out."""

from __future__ import annotations

import hashlib

from ruvon_workers import StepContext, WorkflowFailedException

from .models import OrderState

APPROVAL_THRESHOLD = 1000.0
SHIPPABLE_COUNTRIES = {"DE", "FR", "NL", "BE", "AT", "IT", "ES", "US", "GB"}


class ShippingError(RuntimeError):
    """The carrier refused the parcel."""


def validate_order(state: OrderState, context: StepContext) -> dict:
    amount = round(sum(item.quantity * item.unit_price for item in state.items), 2)
    state.log.append(f"validated {len(state.items)} item(s)")
    return {"amount": amount, "approval_required": amount > APPROVAL_THRESHOLD}


def record_approval(state: OrderState, context: StepContext, **user_input: object) -> dict:
    approval = context.validated_input
    assert approval is not None  # the engine validated it against ApprovalInput
    if not approval.approved:  # type: ignore[attr-defined]
        raise WorkflowFailedException(f"order {state.order_id} rejected by "
                                      f"{approval.approver}")  # type: ignore[attr-defined]
    state.log.append(f"approved by {approval.approver}")  # type: ignore[attr-defined]
    return {"approved_by": approval.approver, "approval_note": approval.note}  # type: ignore[attr-defined]


def charge_payment(state: OrderState, context: StepContext) -> dict:
    # The idempotency key is stable across redeliveries of this step execution, so a
    # payment provider would charge once even if the step ran twice.
    digest = hashlib.sha256(context.idempotency_key.encode()).hexdigest()[:16]
    state.log.append(f"charged {state.amount:.2f} {state.currency}")
    return {"payment_id": f"pay_{digest}", "charged": True}


def refund_payment(state: OrderState, context: StepContext) -> None:
    # A compensation changes the state in place (what it returns is not merged, as on Ruvon).
    state.log.append(f"refunded {state.payment_id}")
    state.refunded, state.charged = True, False


def ship_order(state: OrderState, context: StepContext) -> dict:
    if state.ship_to_country not in SHIPPABLE_COUNTRIES:
        raise ShippingError(f"no carrier ships to {state.ship_to_country}")
    state.log.append(f"shipped to {state.ship_to_country}")
    return {"tracking_number": f"TRK-{state.order_id}"}


async def send_confirmation(state: OrderState, context: StepContext) -> dict:
    state.log.append("confirmation sent")
    return {"confirmation_sent": True}
