"""Orders and money: web and store orders counted once each, cancellations, refunds, returns and
chargebacks, exact per currency, and what the customer spends on (categories and products).

Counts are of all currencies; the money fields are in the profile's ``currency`` (the first one ordered
in), the others in ``totals_by_currency``: amounts of different currencies are never added together."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField, computed, stored


class CurrencyTotals(BaseModel):
    """Orders and money of one currency: amounts of different currencies are never added together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    orders: int = 0
    spent: Decimal = Field(Decimal(0), description="Amounts of counted (not cancelled) orders.")
    refunded: Decimal = Field(Decimal(0), description="Refunds, store returns and chargebacks of those orders.")
    net: Decimal = Field(Decimal(0), description="spent - refunded.")


OrderStatus = Literal["placed", "shipped", "delivered", "delivery_failed", "returned"]


class OrderRecord(BaseModel):
    """What the profile remembers of one recent order (the last ``MAX_RECENT_ORDERS``), so that a refund,
    return or cancellation can be applied exactly, and one arriving before its order waits for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Literal["web", "pos"] | None = None
    payment_method: str | None = Field(
        None, description="Web: the order's ``payment_method`` property; till: the tender paying most."
    )
    at: AwareDatetime = Field(description="When the order was placed (or, until it arrives, its first follow-up).")
    currency: str
    amount: Decimal | None = Field(None, description="None: the order itself has not arrived (yet).")
    refunded: Decimal = Field(Decimal(0), description="Refunded so far (requested so far, while amount is None).")
    whole_refund: bool = Field(False, description="A refund of the whole order arrived before the order.")
    cancelled: bool = False
    paid_with_points: Decimal = Decimal(0)
    points: int = Field(0, description="Loyalty points the order earns now (net of its refunds).")
    # fulfilment (services.profile.facets.fulfilment): where the goods are
    status: OrderStatus = Field("placed", description="The latest fulfilment event's (by its time).")
    status_at: AwareDatetime | None = Field(None, description="The time of the event that set the status.")
    carrier: str | None = None
    tracking_number: str | None = None
    promised_by: AwareDatetime | None = Field(None, description="The delivery promised when it was shipped.")
    returned_products: tuple[str, ...] = Field((), description="Products sent back (order.returned).")


class OrdersFacet(BaseModel):
    order_count: int = Field(0, description="Orders counted (web and store), cancelled ones excluded.")
    web_orders: int = 0
    pos_orders: int = 0
    cancelled_orders: int = 0
    total_spent: Decimal = Field(Decimal(0), description="Gross amount of the counted orders in ``currency``.")
    refunded_total: Decimal = Field(Decimal(0), description="Refunds, returns, chargebacks in ``currency``.")
    net_revenue: Decimal = Field(Decimal(0), description="total_spent - refunded_total.")
    average_order_value: Decimal | None = Field(None, description="total_spent / orders in ``currency``.")
    lifetime_value: Decimal = Field(Decimal(0), description="Historical: the net revenue, no projection.")
    currency: str | None = Field(None, description="The currency of the first order counted.")
    totals_by_currency: dict[str, CurrencyTotals] = Field(default_factory=dict)
    first_order_at: AwareDatetime | None = None
    order_months: dict[str, int] = Field(
        default_factory=dict, description='Orders counted per month of their time ("2026-03"): retention by cohort.'
    )
    last_order_at: AwareDatetime | None = None
    order_ids: list[str] = Field(default_factory=list, description="Orders counted, so a replay counts none twice.")
    recent_orders: dict[str, OrderRecord] = Field(
        default_factory=dict, description="The latest orders by order id, and follow-ups waiting for theirs."
    )
    refund_ids: list[str] = Field(
        default_factory=list, description="Refunds, returns and chargebacks applied, so none counts twice."
    )
    refund_count: int = 0
    return_count: int = 0
    chargebacks: int = 0
    category_spend: dict[str, Decimal] = Field(default_factory=dict, description="In ``currency``.")
    top_categories: list[str] = Field(default_factory=list, description="By spend, highest first.")
    product_spend: dict[str, Decimal] = Field(
        default_factory=dict, description="In ``currency``; the products with the highest spend only."
    )
    top_products: list[str] = Field(default_factory=list, description="By spend, highest first.")


@computed("top_categories")
def top_categories(p: OrdersFacet) -> tuple[str, ...]:
    return tuple(p.top_categories)


@computed("top_products")
def top_products(p: OrdersFacet) -> tuple[str, ...]:
    return tuple(p.top_products)


SEGMENT_FIELDS: list[SegmentField] = stored(
    OrdersFacet,
    *("order_count", "web_orders", "pos_orders", "cancelled_orders", "refund_count", "return_count"),
    *("total_spent", "net_revenue", "refunded_total", "average_order_value", "currency"),
    *("first_order_at", "last_order_at", "chargebacks"),
)
SEGMENT_FIELDS += [top_categories, top_products]
