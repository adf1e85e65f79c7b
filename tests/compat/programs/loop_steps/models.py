from pydantic import BaseModel


class InvoiceState(BaseModel):
    customer: str
    lines: list[dict] = []
    priced: list[str] = []
    net: float = 0.0
    tax: float = 0.0
    ledger_pending: bool = True
    polls: int = 0
    total: float | None = None
    trail: list[str] = []
