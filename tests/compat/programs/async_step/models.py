from pydantic import BaseModel


class ProfileState(BaseModel):
    user_id: str
    profile: dict = {}
    enriched_by: str | None = None
    saved: bool = False
    trail: list[str] = []
