from pydantic import BaseModel


class GreetingState(BaseModel):
    name: str = "World"
    greeting: str | None = None
    message: str | None = None
    farewell: str | None = None
    trail: list[str] = []
