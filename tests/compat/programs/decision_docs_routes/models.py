from pydantic import BaseModel


class OrderState(BaseModel):
    order_id: str
    amount: float
    country: str = "US"
    is_domestic: bool = False
    review_required: bool = False
    reviewed: bool = False
    shipping: str | None = None
    processed: bool = False
    trail: list[str] = []
