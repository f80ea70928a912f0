"""The event contract: one envelope, one payload model per event type, one decoder.

Web events use the Segment e-commerce spec names (``Product Added``, ``Order Completed`` …); events of the
store, payment, social and support systems use native dotted names (``pos.sale``, ``payment.failed`` …).
Everything on ``crm.events.v1`` is one of these models, serialised with ``model_dump_json``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

SCHEMA_VERSION = 1

Source = Literal["web", "pos", "payment", "social", "support", "crm"]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]
Currency = Annotated[
    str, BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v), Field(pattern=r"^[A-Z]{3}$")
]
Id = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Open(BaseModel):
    """Payloads that, like Segment's, may carry extra properties besides the specified ones."""

    model_config = ConfigDict(frozen=True, extra="allow")


class Product(_Open):
    """A product as the Segment e-commerce spec describes it: every field optional, but crmhub needs
    something to tell products apart (``product_id``, else ``sku``)."""

    product_id: Id
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    price: Money = Decimal(0)
    quantity: int = Field(1, ge=1, le=10_000)

    @model_validator(mode="before")
    @classmethod
    def _id_from_sku(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("product_id") and data.get("sku"):
            return {**data, "product_id": str(data["sku"])}
        return data


class CartProduct(Product):
    cart_id: str | None = None


class CheckoutProperties(_Open):
    order_id: Id | None = None
    value: Money | None = None
    revenue: Money | None = None
    currency: Currency = "USD"
    products: list[Product] = []


class OrderProperties(_Open):
    order_id: Id
    total: Money | None = None
    revenue: Money | None = None
    currency: Currency = "USD"
    products: list[Product] = []

    @model_validator(mode="after")
    def _has_amount(self) -> OrderProperties:
        if self.total is None and self.revenue is None and not self.products:
            raise ValueError("an order needs 'total', 'revenue' or priced 'products'")
        return self

    @property
    def amount(self) -> Decimal:
        """total, else revenue (Segment's two names), else the sum of the products."""
        if self.total is not None:
            return self.total
        if self.revenue is not None:
            return self.revenue
        return sum((p.price * p.quantity for p in self.products), Decimal(0))


class PosSaleProperties(_Model):
    store_id: Id
    till_id: Id
    receipt_id: Id
    total: Money
    currency: Currency = "USD"
    items: list[Product] = []
    tender: Literal["cash", "card", "voucher", "mobile"] = "card"


class PaymentFailedProperties(_Model):
    payment_id: Id
    order_id: Id | None = None
    amount: Money
    currency: Currency = "USD"
    method: str = "card"
    reason_code: str


class SocialMentionProperties(_Model):
    mention_id: Id
    platform: Literal["twitter", "instagram", "facebook", "tiktok", "trustpilot", "other"]
    handle: Id
    text: str = Field(max_length=5000)
    sentiment: float | None = Field(None, ge=-1, le=1)
    complaint: bool = False


class SupportRepliedProperties(_Model):
    mention_id: Id
    agent: str
    text: str = Field("", max_length=5000)


class Traits(_Open):
    model_config = ConfigDict(frozen=True, extra="allow", coerce_numbers_to_str=True)

    email: str | None = None
    phone: str | None = None
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    age: int | None = Field(None, ge=0, le=130)
    gender: str | None = None
    city: str | None = None
    country: str | None = None
    children: int | None = Field(None, ge=0, le=30)


class Envelope(_Model):
    event_id: Id
    schema_version: int = SCHEMA_VERSION
    source: Source
    occurred_at: AwareDatetime
    received_at: AwareDatetime | None = None
    anonymous_id: str | None = None
    customer_id: str | None = None
    email: str | None = None
    phone: str | None = None
    loyalty_id: str | None = None
    profile_id: str | None = None  # stamped by ingest after identity resolution

    def identifiers(self) -> dict[str, str]:
        """The identifiers this event carries, by kind."""
        found = {kind: getattr(self, kind) for kind in IDENTIFIER_KINDS}
        return {kind: value for kind, value in found.items() if value}


IDENTIFIER_KINDS = ("customer_id", "email", "phone", "loyalty_id", "anonymous_id")


class Identify(Envelope):
    type: Literal["identify"]
    traits: Traits = Traits()


class PageProperties(_Open):
    name: str | None = None
    category: str | None = None
    url: str | None = None
    path: str | None = None
    referrer: str | None = None
    title: str | None = None


class Page(Envelope):
    """A Segment page call: a page of the shop was viewed."""

    type: Literal["page"]
    properties: PageProperties = PageProperties()


class Alias(Envelope):
    """A Segment alias call: ``previous_id`` (an anonymous or older id) is the same person as the
    customer id. Identity resolution links them like any two identifiers of one event."""

    type: Literal["alias"]


class ProductViewed(Envelope):
    type: Literal["Product Viewed"]
    properties: Product


class ProductAdded(Envelope):
    type: Literal["Product Added"]
    properties: CartProduct


class ProductRemoved(Envelope):
    type: Literal["Product Removed"]
    properties: CartProduct


class CheckoutStarted(Envelope):
    type: Literal["Checkout Started"]
    properties: CheckoutProperties


class OrderCompleted(Envelope):
    type: Literal["Order Completed"]
    properties: OrderProperties


class PosSale(Envelope):
    type: Literal["pos.sale"]
    properties: PosSaleProperties


class PaymentFailed(Envelope):
    type: Literal["payment.failed"]
    properties: PaymentFailedProperties


COMPLAINT_SENTIMENT = -0.5  # a mention this negative is a complaint even when not flagged as one


class SocialMention(Envelope):
    type: Literal["social.mention"]
    properties: SocialMentionProperties

    @property
    def is_complaint(self) -> bool:
        sentiment = self.properties.sentiment
        return self.properties.complaint or (sentiment is not None and sentiment <= COMPLAINT_SENTIMENT)


class SupportReplied(Envelope):
    type: Literal["support.replied"]
    properties: SupportRepliedProperties


Event = Annotated[
    Identify
    | Page
    | Alias
    | ProductViewed
    | ProductAdded
    | ProductRemoved
    | CheckoutStarted
    | OrderCompleted
    | PosSale
    | PaymentFailed
    | SocialMention
    | SupportReplied,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_MODELS: tuple[type[Envelope], ...] = get_args(get_args(Event)[0])
EVENT_TYPES: tuple[str, ...] = tuple(get_args(m.model_fields["type"].annotation)[0] for m in EVENT_MODELS)


EVENT_BATCH_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


def decode_event_batch(data: bytes | str) -> list[Event]:
    """Decode a ``crm.events.v1`` record, a JSON array of events (raises pydantic.ValidationError)."""
    return EVENT_BATCH_ADAPTER.validate_json(data)


def validate_event(obj: dict[str, Any]) -> Event:
    return EVENT_ADAPTER.validate_python(obj)
