from models import GreetingState
from ruvon.models import StepContext


def greet_user(state: GreetingState, context: StepContext) -> dict:
    state.trail.append("Greet_User")
    return {"greeting": f"Hello, {state.name}!"}


def compose_message(state: GreetingState, context: StepContext) -> dict:
    state.trail.append("Compose_Message")
    return {"message": f"{state.greeting} Welcome aboard."}


def say_goodbye(state: GreetingState, context: StepContext) -> dict:
    state.trail.append("Say_Goodbye")
    return {"farewell": f"Goodbye, {state.name}!"}
