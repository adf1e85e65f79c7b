"""State models of the order fulfillment example."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class OrderLine(BaseModel):
    sku: str
    quantity: int = Field(gt=0)
    unit_price: float = Field(ge=0)
    weight_kg: float = Field(default=0.5, ge=0)


class FulfillmentState(BaseModel):
    order_id: str
    customer_id: str
    customer_email: str
    lines: list[OrderLine] = Field(min_length=1)
    currency: str = "EUR"
    ship_to_country: str = "DE"
    billing_country: str = "DE"
    gift_wrap: bool = False
    warehouse: str = "BER-1"
    carrier_api_url: str = "http://127.0.0.1:8080"
    # Validate_Order
    total: float = 0.0
    units: int = 0
    # Screen_Order (PARALLEL, DEEP merge): one entry per check
    checks: dict[str, Any] = Field(default_factory=dict)
    risk: str = "unknown"
    # Inserted by dynamic_injection when the risk is high
    reviewed_by: str | None = None
    signature_required: bool = False
    # Reserve_Stock (PARALLEL over the lines): sku -> reservation id
    reservations: dict[str, str] = Field(default_factory=dict)
    # Pick_Lines (LOOP over the lines)
    picked: list[str] = Field(default_factory=list)
    weight_kg: float = 0.0
    gift_wrapped: bool = False
    # Quote_Shipping (HTTP)
    carrier_quote: dict[str, Any] | None = None
    # Ship (the Shipment sub-workflow's final state lands here)
    sub_workflow_results: dict[str, Any] = Field(default_factory=dict)
    tracking_number: str | None = None
    parcels: int = 0
    # Notify_Customer (FIRE_AND_FORGET): the CustomerEmail workflow's id
    email_workflow_id: str | None = None
    log: list[str] = Field(default_factory=list)


class ShipmentState(BaseModel):
    order_id: str
    carrier: str
    service: str = "standard"
    units: int = Field(gt=0)
    signature_required: bool = False
    packed_units: int = 0
    parcels: list[dict[str, int]] = Field(default_factory=list)
    tracking_number: str | None = None


class CustomerEmailState(BaseModel):
    order_id: str
    to: str
    subject: str
    tracking_number: str | None = None
    body: str = ""
    message_id: str | None = None


class StockReportState(BaseModel):
    warehouse: str
    low_stock: list[str] = Field(default_factory=list)
    published: bool = False
