"""The benchmark workflow's state: an order of about 5 KB of JSON."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BenchLine(BaseModel):
    sku: str
    description: str
    quantity: int
    unit_price: float
    warehouse: str
    tags: list[str] = Field(default_factory=list)


class BenchState(BaseModel):
    order_id: str
    customer_id: str
    lines: list[BenchLine] = Field(default_factory=list)
    total: float = 0.0
    risk: str = "unknown"
    shipping: str = "standard"
    validated: bool = False
    priced: bool = False
    finalized: bool = False
    line_totals: dict[str, float] = Field(default_factory=dict)


def make_state(n: int, lines: int = 30) -> dict:
    """Initial data of about 5 KB (``lines=60`` gives about 10 KB)."""
    return {
        "order_id": f"bench-{n}",
        "customer_id": f"customer-{n % 97}",
        "lines": [
            {"sku": f"SKU-{n}-{i:04d}", "description": f"Benchmark article number {i} of {n}",
             "quantity": 1 + i % 5, "unit_price": 9.99 + i, "warehouse": f"WH-{i % 7}",
             "tags": ["bench", f"group-{i % 3}", "fragile" if i % 4 == 0 else "regular"]}
            for i in range(lines)
        ],
    }
