from models import ReportState, SetupState
from ruvon.models import StepContext


def configure_customer(state: SetupState, context: StepContext) -> dict:
    state.trail.append("Configure_Customer")
    return {"configured": True}


def finish_setup(state: SetupState, context: StepContext) -> dict:
    state.trail.append("Finish_Setup")
    return {"finished": True}


def build_report(state: ReportState, context: StepContext) -> dict:
    state.trail.append("Build_Report")
    return {"built": True}
