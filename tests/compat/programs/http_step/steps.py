from models import CreditState
from ruvon.models import StepContext


def prepare_request(state: CreditState, context: StepContext) -> dict:
    state.trail.append("Prepare_Request")
    return {"prepared": True}


def use_score(state: CreditState, context: StepContext) -> dict:
    state.trail.append("Use_Score")
    score = (state.score_result or {}).get("score", 0)
    return {"decision": "approve" if score >= 700 else "decline"}
