from models import DocumentState
from ruvon.models import StepContext, WorkflowPauseDirective


def submit_document(state: DocumentState, context: StepContext) -> dict:
    state.trail.append("Submit_Document")
    return {"submitted": True}


def request_review(state: DocumentState, context: StepContext) -> dict:
    state.trail.append("Request_Review")
    state.review_requested = True
    raise WorkflowPauseDirective(result={"review_status": "pending"})


def apply_review(state: DocumentState, context: StepContext, **user_input) -> dict:
    """The step after the pause; written to take the reviewer's input if it gets any."""
    state.trail.append("Apply_Review")
    return {
        "input_seen": sorted(user_input),
        "verdict": user_input.get("verdict", "no verdict given"),
        "review_status": "done",
    }


def publish(state: DocumentState, context: StepContext) -> dict:
    state.trail.append("Publish")
    return {"published": state.verdict == "approve"}
