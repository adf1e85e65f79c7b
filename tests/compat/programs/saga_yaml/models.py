from pydantic import BaseModel


class PaymentState(BaseModel):
    order_id: str
    amount: float
    order_created: bool = False
    payment_charged: bool = False
    inventory_reserved: bool = False
    shipment_created: bool = False
    confirmation_sent: bool = False
    status_note: str = "new"
    compensations_run: list[str] = []
    trail: list[str] = []
