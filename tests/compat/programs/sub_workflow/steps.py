from models import KycState, OnboardingState
from ruvon.models import StartSubWorkflowDirective, StepContext


def collect_details(state: OnboardingState, context: StepContext) -> dict:
    state.trail.append("Collect_Details")
    return {"document": f"passport:{state.customer}"}


def run_kyc(state: OnboardingState, context: StepContext) -> dict:
    state.trail.append("Run_Kyc")
    raise StartSubWorkflowDirective(
        workflow_type="KycCheck",
        initial_data={"customer": state.customer, "document": state.document},
    )


def activate_customer(state: OnboardingState, context: StepContext) -> dict:
    state.trail.append("Activate_Customer")
    # The engine files each finished child under its id.
    children = list(state.sub_workflow_results.values())
    passed = bool(children) and all(
        child["status"] == "COMPLETED" and not child["state"]["sanctions_hit"] for child in children
    )
    return {"kyc_passed": passed, "active": passed}


def verify_identity(state: KycState, context: StepContext) -> dict:
    state.trail.append("Verify_Identity")
    return {"identity_ok": state.document.startswith("passport:")}


def screen_sanctions(state: KycState, context: StepContext) -> dict:
    state.trail.append("Screen_Sanctions")
    return {"sanctions_hit": state.customer in {"mallory"}}
