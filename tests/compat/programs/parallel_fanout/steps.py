from models import FleetState
from ruvon.models import StepContext


def load_devices(state: FleetState, context: StepContext) -> dict:
    state.trail.append("Load_Devices")
    return {"device_ids": ["dev-a", "dev-b", "dev-c"]}


# Called once per device id, in worker threads, with the state as a plain dict.
def push_to_device(state: dict, context: StepContext, device_id: str = "", **_) -> dict:
    return {
        "pushed": device_id,
        "acks": [f"{device_id}@{state['config_version']} ({context.step_name})"],
    }


def tally_pushes(state: FleetState, context: StepContext) -> dict:
    state.trail.append("Tally_Pushes")
    return {"tally": f"last pushed {state.pushed}; {len(state.acks)} ack(s) kept"}
