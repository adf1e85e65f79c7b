from models import AccountState
from ruvon.models import StepContext

EU = {"DE", "FR", "NL", "IE"}


def classify_applicant(state: AccountState, context: StepContext) -> dict:
    state.trail.append("Classify_Applicant")
    return {
        "profile": {
            "region": "EU" if state.country in EU else "OTHER",
            "segment": state.kind,
            "age": state.age,
        }
    }


def gdpr_consent(state: AccountState, context: StepContext) -> dict:
    state.trail.append("Gdpr_Consent")
    return {"consents": [*state.consents, "gdpr"]}


def business_verification(state: AccountState, context: StepContext) -> dict:
    state.trail.append("Business_Verification")
    return {"verified_business": True}


def guardian_consent(state: AccountState, context: StepContext) -> dict:
    state.trail.append("Guardian_Consent")
    return {"consents": [*state.consents, "guardian"]}


def never_runs(state: AccountState, context: StepContext) -> dict:
    state.trail.append("Never_Runs")
    return {}


def open_account(state: AccountState, context: StepContext) -> dict:
    state.trail.append("Open_Account")
    return {"account_number": f"ACC-{state.applicant.upper()}"}
