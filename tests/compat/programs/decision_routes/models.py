from pydantic import BaseModel


class Risk(BaseModel):
    escalate: bool = False
    reasons: list[str] = []


class TicketState(BaseModel):
    subject: str
    customer_tier: str = "basic"
    is_vip: bool = False
    risk: Risk = Risk()
    handled_by: str | None = None
    closed: bool = False
    trail: list[str] = []
