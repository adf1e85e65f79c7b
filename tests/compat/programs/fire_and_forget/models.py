from pydantic import BaseModel


class OrderState(BaseModel):
    order_id: str
    amount: float
    recorded: bool = False
    spawned_workflows: list[dict] = []
    confirmed: bool = False
    trail: list[str] = []


class AuditState(BaseModel):
    order_ref: str = ""
    amount: str = ""
    source: str = ""
    written: bool = False
    trail: list[str] = []
