from pydantic import BaseModel


class CreditState(BaseModel):
    customer_id: str
    amount: float
    prepared: bool = False
    score_result: dict | None = None
    decision: str | None = None
    trail: list[str] = []
