from models import ChargeState
from ruvon.models import StepContext, WorkflowJumpDirective


def prepare_charge(state: ChargeState, context: StepContext) -> dict:
    state.trail.append("Prepare_Charge")
    return {"prepared_times": state.prepared_times + 1}


def attempt_charge(state: ChargeState, context: StepContext) -> dict:
    state.trail.append("Attempt_Charge")
    state.attempts += 1
    if state.attempts < 2:
        # The gateway declined: prepare again (a jump backwards).
        raise WorkflowJumpDirective("Prepare_Charge")
    state.charged = True
    if state.amount < 100:
        # Small amounts skip the fraud review (a jump forwards).
        raise WorkflowJumpDirective("Send_Receipt")
    return {}


def fraud_review(state: ChargeState, context: StepContext) -> dict:
    state.trail.append("Fraud_Review")
    return {"reviewed": True}


def send_receipt(state: ChargeState, context: StepContext) -> dict:
    state.trail.append("Send_Receipt")
    return {"receipt": f"paid {state.amount:.2f} after {state.attempts} attempt(s)"}
