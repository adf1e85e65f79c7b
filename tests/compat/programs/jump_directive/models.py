from pydantic import BaseModel


class ChargeState(BaseModel):
    amount: float
    attempts: int = 0
    prepared_times: int = 0
    charged: bool = False
    reviewed: bool = False
    receipt: str | None = None
    trail: list[str] = []
