from models import ProfileState
from ruvon.models import StepContext


def load_profile(state: ProfileState, context: StepContext) -> dict:
    state.trail.append("Load_Profile")
    return {"profile": {"name": "Noor", "prefs": {"lang": "en", "tz": "UTC"}}}


# ASYNC functions get the state as a plain dict; a result is merged with the step's strategy.
def enrich_profile(state: dict, context: StepContext) -> dict:
    return {
        "profile": {"prefs": {"tz": "CET"}, "segment": "returning"},
        "enriched_by": context.step_name,
        "trail": [*state["trail"], "Enrich_Profile"],
    }


def save_profile(state: ProfileState, context: StepContext) -> dict:
    state.trail.append("Save_Profile")
    return {"saved": True}
