from models import TicketState
from ruvon.models import StepContext


def triage(state: TicketState, context: StepContext) -> dict:
    state.trail.append("Triage")
    # The routes read these two flags with bare dot paths ("is_vip", "risk.escalate").
    return {
        "is_vip": state.customer_tier == "gold",
        "risk": {"escalate": "outage" in state.subject, "reasons": []},
    }


def escalate(state: TicketState, context: StepContext) -> dict:
    state.trail.append("Escalate")
    return {"handled_by": "on-call"}


def vip_desk(state: TicketState, context: StepContext) -> dict:
    state.trail.append("Vip_Desk")
    return {"handled_by": "vip-desk"}


def standard_desk(state: TicketState, context: StepContext) -> dict:
    state.trail.append("Standard_Desk")
    return {"handled_by": "helpdesk"}


def close_ticket(state: TicketState, context: StepContext) -> dict:
    state.trail.append("Close_Ticket")
    return {"closed": True}
