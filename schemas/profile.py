"""The unified customer profile: what ``crm.profiles.v1`` carries and the API returns.

Every field and the rule that keeps it is described in ``docs/profile.md``. Every field has a default, so
profiles stored before a field existed still load; small nested values are frozen and replaced, never
changed in place (the fold copies only the containers it mutates).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, NamedTuple

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

    items: list[CartItem] = Field(default_factory=list)
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


class Seen(NamedTuple):
    """When an identifier was first and last seen on an event (event times); a pair ``[first, last]`` in
    JSON (a named tuple: the fold makes one per identifier per event, so it must be cheap)."""

    first: AwareDatetime
    last: AwareDatetime


class Demographics(BaseModel):
    """Derived from the traits on every identify: the age as a band, gender, where the customer lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    age_band: str | None = Field(None, description='"under 18", "18-24", "25-34", … "55-64", "65+".')
    gender: str | None = Field(None, description='"female", "male", or the value given, lower-cased.')
    city: str | None = None
    region: str | None = None
    country: str | None = None


class Touch(BaseModel):
    """A visit's campaign (UTM source, medium and campaign name) and when it was seen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    at: AwareDatetime


class MarketingContext(BaseModel):
    """Kept from the ``context`` of tracking calls (``services.profile.context``): the first and the last
    campaign, and the latest referrer, device type, locale, time zone and country of the IP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_touch: Touch | None = Field(None, description="The earliest campaign by event time.")
    last_touch: Touch | None = Field(None, description="The latest campaign by event time.")
    referrer: str | None = None
    device_type: str | None = None
    locale: str | None = None
    timezone: str | None = None
    country: str | None = Field(None, description="Of the last IP, as the sender resolved it (no IP is kept).")
    updated_at: AwareDatetime | None = Field(None, description="Event time of the latest context folded in.")


class GroupMembership(BaseModel):
    """An account or organisation the person belongs to (Segment ``group`` calls), with its traits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    traits: dict[str, Any] = Field(default_factory=dict)
    at: AwareDatetime = Field(description="Event time of the latest group call: its traits are these.")


class ConsentState(BaseModel):
    """The customer's latest consent decision for one channel and purpose (latest by event time wins; a
    withdrawal wins a tie)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    granted: bool
    at: AwareDatetime
    source: str
    method: str | None = None


class CurrencyTotals(BaseModel):
    """Orders and money of one currency: amounts of different currencies are never added together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    orders: int = 0
    spent: Decimal = Field(Decimal(0), description="Amounts of counted (not cancelled) orders.")
    refunded: Decimal = Field(Decimal(0), description="Refunds, store returns and chargebacks of those orders.")
    net: Decimal = Field(Decimal(0), description="spent - refunded.")


class OrderRecord(BaseModel):
    """What the profile remembers of one recent order (the last ``MAX_RECENT_ORDERS``), so that a refund,
    return or cancellation can be applied exactly, and one arriving before its order waits for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Literal["web", "pos"] | None = None
    at: AwareDatetime = Field(description="When the order was placed (or, until it arrives, its first follow-up).")
    currency: str
    amount: Decimal | None = Field(None, description="None: the order itself has not arrived (yet).")
    refunded: Decimal = Field(Decimal(0), description="Refunded so far (requested so far, while amount is None).")
    whole_refund: bool = Field(False, description="A refund of the whole order arrived before the order.")
    cancelled: bool = False
    paid_with_points: Decimal = Decimal(0)
    points: int = Field(0, description="Loyalty points the order earns now (net of its refunds).")


class ViewedProduct(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: str
    name: str | None = None
    category: str | None = None
    price: Decimal | None = Field(None, description="As the view gave it (in the shop's currency).")
    at: AwareDatetime


class ComplaintAnswer(BaseModel):
    """A complaint answered (or a reply seen before its complaint): when, and when the complaint was made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answered_at: AwareDatetime
    complained_at: AwareDatetime | None = Field(None, description="None: the complaint itself has not arrived.")


class PaymentFailure(BaseModel):
    """A failed payment the profile remembers (the last ``MAX_PAYMENT_FAILURES``), for the notifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    payment_id: str
    order_id: str | None = None
    amount: Decimal
    currency: str
    reason: str
    at: AwareDatetime


class Loyalty(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    earned: int = Field(0, description="Points earned by orders, net of what refunds and cancellations took back.")
    redeemed: int = Field(0, description="Points paid with at the till (tenders of method loyalty_points).")
    balance: int = Field(0, description="earned - redeemed.")
    tier: str | None = Field(None, description="The highest tier whose threshold ``earned`` reaches.")


class RFM(BaseModel):
    """Recency, frequency and monetary quintile scores (1 low … 5 best) against the customer base, as the
    last periodic refresh computed them (``services.profile.rfm``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recency: int = Field(ge=1, le=5)
    frequency: int = Field(ge=1, le=5)
    monetary: int = Field(ge=1, le=5)
    score: str = Field(description='The three digits, e.g. "545".')
    computed_at: AwareDatetime


class Profile(BaseModel):
    """Folded from events by ``services.profile.fold``; ``version`` counts the events folded in."""

    model_config = ConfigDict(extra="forbid")

    profile_id: str
    version: int = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime
    identifiers: dict[str, list[str]] = Field(default_factory=dict)
    identifier_seen: dict[str, dict[str, Seen]] = Field(
        default_factory=dict, description="Per kind and value of ``identifiers``: first and last seen."
    )
    traits: dict[str, Any] = Field(default_factory=dict)
    trait_sources: dict[str, TraitSource] = Field(
        default_factory=dict, description="Per trait: the source and time of its value (see survivorship)."
    )
    traits_refused: list[str] = Field(
        default_factory=list, description="Traits not kept: the profile already held the most it may."
    )
    demographics: Demographics = Field(default_factory=Demographics)
    context: MarketingContext = Field(default_factory=MarketingContext)
    groups: dict[str, GroupMembership] = Field(default_factory=dict, description="By group id (``group`` calls).")
    consent: dict[str, dict[str, ConsentState]] = Field(
        default_factory=dict, description="Channel -> purpose -> the latest decision."
    )
    # orders: counts of all currencies; money in the profile's currency (the others: totals_by_currency)
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
    category_spend: dict[str, Decimal] = Field(default_factory=dict, description="In ``currency``.")
    top_categories: list[str] = Field(default_factory=list, description="By spend, highest first.")
    product_spend: dict[str, Decimal] = Field(
        default_factory=dict, description="In ``currency``; the products with the highest spend only."
    )
    top_products: list[str] = Field(default_factory=list, description="By spend, highest first.")
    product_views: int = 0
    recent_views: list[ViewedProduct] = Field(default_factory=list, description="Newest first, one per product.")
    cart: Cart = Field(default_factory=Cart)
    complaints_total: int = 0
    open_complaints: list[OpenComplaint] = Field(default_factory=list, description="Complaints not yet answered.")
    complaints_answered: int = 0
    answered_complaints: dict[str, ComplaintAnswer] = Field(
        default_factory=dict, description="The latest answers by message id (replies before their complaint too)."
    )
    last_first_response_s: float | None = Field(None, description="Seconds to the first response, last complaint.")
    avg_first_response_s: float | None = Field(None, description="Mean seconds to the first response.")
    first_response_total_s: float = Field(0.0, description="Sum of the first-response times averaged.")
    payment_failures: int = 0
    last_payment_failure_reason: str | None = None
    last_payment_failure_at: AwareDatetime | None = None
    recent_payment_failures: list[PaymentFailure] = Field(
        default_factory=list, description="The latest failed payments, oldest first, one per payment id and time."
    )
    chargebacks: int = 0
    payment_methods: dict[str, int] = Field(
        default_factory=dict, description="Payments by method: captures, paid invoices and till tenders."
    )
    preferred_payment_method: str | None = None
    loyalty: Loyalty = Field(default_factory=Loyalty)
    rfm: RFM | None = Field(None, description="Set by the periodic RFM refresh; None until the first one.")
    merged_into: str | None = Field(
        None,
        description="Set when this profile was merged into another one: that one holds its history and "
        "identifiers now, and this one stays empty.",
    )

    @property
    def complaints_open(self) -> int:
        return len(self.open_complaints)
