from pydantic import BaseModel


class ApprovalInput(BaseModel):
    approved: bool
    reviewer: str
    comment: str = ""


class ExpenseState(BaseModel):
    employee: str
    amount: float
    valid: bool = False
    approved: bool | None = None
    reviewer: str | None = None
    comment: str | None = None
    validated_input_seen: bool = False
    paid: bool = False
    trail: list[str] = []
