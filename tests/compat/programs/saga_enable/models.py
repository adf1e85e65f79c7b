from pydantic import BaseModel


class TripState(BaseModel):
    traveller: str
    flight: str | None = None
    hotel: str | None = None
    car: str | None = None
    notified: bool = False
    itinerary: str | None = None
    cancelled: list[str] = []
    trail: list[str] = []
