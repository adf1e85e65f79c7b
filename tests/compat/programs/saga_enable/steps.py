from models import TripState
from ruvon.models import StepContext


class HotelSystemDown(RuntimeError):
    pass


class NoCarsLeft(RuntimeError):
    pass


def book_flight(state: TripState, context: StepContext) -> dict:
    state.trail.append("Book_Flight")
    return {"flight": "LH-400"}


def cancel_flight(state: TripState, context: StepContext) -> dict:
    state.trail.append("compensate:Book_Flight")
    state.cancelled.append(state.flight or "?")
    state.flight = None
    return {}


def notify_traveller(state: TripState, context: StepContext) -> dict:
    state.trail.append("Notify_Traveller")
    return {"notified": True}


def book_hotel(state: TripState, context: StepContext) -> dict:
    state.trail.append("Book_Hotel")
    return {"hotel": "Harbour Inn"}


def cancel_hotel(state: TripState, context: StepContext) -> dict:
    # This compensation fails: the saga logs it and still compensates the flight.
    state.trail.append("compensate:Book_Hotel")
    raise HotelSystemDown("cannot reach the hotel system")


def rent_car(state: TripState, context: StepContext) -> dict:
    state.trail.append("Rent_Car")
    raise NoCarsLeft(f"no cars left for {state.traveller}")


def return_car(state: TripState, context: StepContext) -> dict:
    state.trail.append("compensate:Rent_Car")
    state.cancelled.append("car")
    return {}


def issue_itinerary(state: TripState, context: StepContext) -> dict:
    state.trail.append("Issue_Itinerary")
    return {"itinerary": f"{state.flight} / {state.hotel} / {state.car}"}
