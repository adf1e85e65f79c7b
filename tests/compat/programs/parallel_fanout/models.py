from pydantic import BaseModel


class FleetState(BaseModel):
    config_version: str
    device_ids: list[str] = []
    pushed: str | None = None
    acks: list[str] = []
    tally: str | None = None
    trail: list[str] = []
