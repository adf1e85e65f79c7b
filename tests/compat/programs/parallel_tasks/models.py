from pydantic import BaseModel


class OrderState(BaseModel):
    order_id: str
    items: list[dict] = []
    total: float = 0.0
    inventory_ok: bool | None = None
    payment_ok: bool | None = None
    fraud_score: float | None = None
    last_check: str | None = None
    decision: str | None = None
    trail: list[str] = []
