"""State and input models of the order example."""

from __future__ import annotations

from pydantic import BaseModel, Field


class OrderItem(BaseModel):
    sku: str
    quantity: int = Field(gt=0)
    unit_price: float = Field(ge=0)


class OrderState(BaseModel):
    order_id: str
    customer_id: str
    items: list[OrderItem] = Field(min_length=1)
    currency: str = "EUR"
    ship_to_country: str = "DE"
    amount: float = 0.0
    approval_required: bool = False
    approved_by: str | None = None
    approval_note: str | None = None
    payment_id: str | None = None
    charged: bool = False
    refunded: bool = False
    tracking_number: str | None = None
    confirmation_sent: bool = False
    log: list[str] = Field(default_factory=list)


class ApprovalInput(BaseModel):
    approved: bool
    approver: str = Field(min_length=1)
    note: str | None = None
