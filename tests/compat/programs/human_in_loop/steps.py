from models import ExpenseState
from ruvon.models import StepContext


def validate_claim(state: ExpenseState, context: StepContext) -> dict:
    state.trail.append("Validate_Claim")
    return {"valid": 0 < state.amount < 5000}


def record_decision(state: ExpenseState, context: StepContext, **user_input) -> dict:
    """Runs when the workflow is resumed with the manager's input."""
    state.trail.append("Manager_Approval")
    return {
        "approved": user_input["approved"],
        "reviewer": user_input["reviewer"],
        "comment": user_input.get("comment", ""),
        "validated_input_seen": context.validated_input is not None,
    }


def pay_out(state: ExpenseState, context: StepContext) -> dict:
    state.trail.append("Pay_Out")
    return {"paid": bool(state.approved and state.valid)}
