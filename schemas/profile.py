"""The unified customer profile: what ``crm.profiles.v1`` carries and the API returns."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class CartItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: str
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    price: Decimal
    quantity: int


class Cart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[CartItem] = []
    value: Decimal = Decimal(0)
    updated_at: AwareDatetime | None = None
    cleared_at: AwareDatetime | None = Field(
        None, description="Time of the order that emptied the cart: older cart events arriving late are ignored."
    )


class OpenComplaint(BaseModel):
    """A social mention that is a complaint, waiting for support's reply."""

    model_config = ConfigDict(extra="forbid")

    message_id: str
    platform: str
    handle: str
    text: str
    sentiment: float | None = None
    at: AwareDatetime


class TraitSource(BaseModel):
    """Where a trait's current value came from: the latest value by event time wins."""

    model_config = ConfigDict(extra="forbid")

    source: str
    at: AwareDatetime


class Profile(BaseModel):
    """Folded from events by ``services.profile.fold``; ``version`` counts the events folded in."""

    model_config = ConfigDict(extra="forbid")

    profile_id: str
    version: int = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime
    identifiers: dict[str, list[str]] = {}
    traits: dict[str, Any] = {}
    trait_sources: dict[str, TraitSource] = Field(
        default_factory=dict, description="Per trait: the source and time of its value (latest wins)."
    )
    order_count: int = 0
    web_orders: int = 0
    pos_orders: int = 0
    total_spent: Decimal = Decimal(0)
    currency: str | None = None
    first_order_at: AwareDatetime | None = None
    last_order_at: AwareDatetime | None = None
    order_ids: list[str] = Field(default_factory=list, description="Orders counted, so a replay counts none twice.")
    cart: Cart = Cart()
    complaints_total: int = 0
    open_complaints: list[OpenComplaint] = Field(default_factory=list, description="Complaints not yet answered.")
    payment_failures: int = 0
    last_payment_failure_reason: str | None = None
    merged_into: str | None = Field(
        None,
        description="Set when this profile was merged into another one: that one holds its history and "
        "identifiers now, and this one stays empty.",
    )

    @property
    def complaints_open(self) -> int:
        return len(self.open_complaints)
