"""The event contract: one envelope, one payload model per event type, one decoder.

Web events use the Segment e-commerce spec names (``Product Added``, ``Order Completed`` …); events of the
store, payment, social and support systems use native dotted names (``pos.sale``, ``payment.failed`` …).
Everything on ``crm.events.v1`` is one of these models, serialised with ``model_dump_json``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, get_args

import iso4217
import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)

from schemas.versions import SCHEMA_VERSION, upcast

DEFAULT_CURRENCY = "USD"

Source = Literal["web", "pos", "payment", "social", "support", "catalog", "crm"]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]
Id = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=5000)]


@cache
def minor_units(code: str) -> int | None:
    """Decimal places of an ISO 4217 currency (2 for EUR, 0 for JPY, 3 for KWD); None if it is not one
    (or has no minor unit, like gold XAU)."""
    try:
        return iso4217.Currency(code).exponent
    except ValueError:
        return None


def _iso4217(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    code = value.strip().upper()
    if len(code) != 3 or minor_units(code) is None:
        raise ValueError(f"{value[:20]!r} is not an ISO 4217 currency code")
    return code


Currency = Annotated[str, BeforeValidator(_iso4217), Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]


_QUANTA = {exponent: Decimal(1).scaleb(-exponent) for exponent in range(8)}


def round_to_minor_units(value: Any, exponent: int) -> Any:
    """A number (or numeric string) rounded half-even to the currency's minor units; anything else is left
    for validation to reject with its own message."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return value
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value) if isinstance(value, float) else value)
        return amount.quantize(_QUANTA[exponent], ROUND_HALF_EVEN) if amount.is_finite() else value
    except InvalidOperation:
        return value


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Open(BaseModel):
    """Payloads that, like Segment's, may carry extra properties besides the specified ones."""

    model_config = ConfigDict(frozen=True, extra="allow")


class _Priced(BaseModel):
    """A payload with amounts in one currency: every amount named in ``_amounts`` is rounded half-even to
    the currency's minor units before validation, so 19.999 EUR is 20.00 and 1200.4 JPY is 1200 (equal
    amounts compare equal); the items of the lists named in ``_item_lists`` inherit the currency."""

    _amounts: ClassVar[tuple[str, ...]] = ()
    _item_lists: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _round_amounts(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        currency = data.get("currency") or DEFAULT_CURRENCY
        exponent = minor_units(currency.strip().upper()) if isinstance(currency, str) else None
        if exponent is None:
            return data  # the currency field rejects it
        out = dict(data)
        for name in cls._amounts:
            if name in out:
                out[name] = round_to_minor_units(out[name], exponent)
        for name in cls._item_lists:  # items round their own amounts, in the currency of the whole
            items = out.get(name)
            if isinstance(items, list):
                out[name] = [{"currency": currency, **item} if isinstance(item, dict) else item for item in items]
        return out


# ---- web: the Segment e-commerce spec -------------------------------------------------------------


class Product(_Priced, _Open):
    """A product as the Segment e-commerce spec describes it: every field optional, but crmhub needs
    something to tell products apart (``product_id``, else ``sku``)."""

    _amounts = ("price",)

    product_id: Id
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    price: Money = Decimal(0)
    quantity: int = Field(1, ge=1, le=10_000)
    currency: Currency | None = None

    @model_validator(mode="before")
    @classmethod
    def _id_from_sku(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("product_id") and data.get("sku"):
            return {**data, "product_id": str(data["sku"])}
        return data


class CartProduct(Product):
    cart_id: str | None = None


class CartProperties(_Priced, _Open):
    _item_lists = ("products",)

    cart_id: str | None = None
    currency: Currency = DEFAULT_CURRENCY
    products: list[Product] = []


class CheckoutProperties(_Priced, _Open):
    _amounts = ("value", "revenue")
    _item_lists = ("products",)

    checkout_id: str | None = None
    order_id: Id | None = None
    value: Money | None = None
    revenue: Money | None = None
    currency: Currency = DEFAULT_CURRENCY
    products: list[Product] = []


class PaymentInfoProperties(_Open):
    checkout_id: str | None = None
    order_id: str | None = None
    step: int | None = None
    shipping_method: str | None = None
    payment_method: str | None = None


class _OrderAmounts(_Priced, _Open):
    """The properties Segment gives Order Completed, Order Cancelled and Order Refunded alike."""

    _amounts = ("total", "revenue")
    _item_lists = ("products",)

    order_id: Id
    total: Money | None = None
    revenue: Money | None = None
    currency: Currency = DEFAULT_CURRENCY
    products: list[Product] = []

    @property
    def amount(self) -> Decimal | None:
        """total, else revenue (Segment's two names), else the sum of the products, else None."""
        if self.total is not None:
            return self.total
        if self.revenue is not None:
            return self.revenue
        if self.products:
            return sum((p.price * p.quantity for p in self.products), Decimal(0))
        return None


class OrderProperties(_OrderAmounts):
    @model_validator(mode="after")
    def _has_amount(self) -> OrderProperties:
        if self.amount is None:
            raise ValueError("an order needs 'total', 'revenue' or priced 'products'")
        return self

    @property
    def order_amount(self) -> Decimal:
        return self.amount or Decimal(0)


class OrderRefundProperties(_OrderAmounts):
    """No amount (no total, revenue or products) means the whole order was refunded."""


class OrderCancelProperties(_OrderAmounts):
    reason: str | None = None


# ---- stores ---------------------------------------------------------------------------------------


class Tender(_Priced, _Model):
    _amounts = ("amount",)

    method: Literal["cash", "card", "voucher", "mobile", "gift_card", "loyalty_points"]
    amount: Money
    currency: Currency | None = None


class _Till(_Priced, _Model):
    _amounts = ("total",)
    _item_lists = ("line_items", "tenders")

    store_id: Id
    till_id: Id
    total: Money
    currency: Currency = DEFAULT_CURRENCY
    line_items: list[Product] = []


class PosSaleProperties(_Till):
    """A till receipt. The customer is named by the envelope (``loyalty_id`` of the card scanned, …)."""

    receipt_id: Id
    tenders: list[Tender] = Field([], description="How it was paid: several tenders may share one receipt.")


class PosReturnProperties(_Till):
    """Goods brought back to a store; ``total`` is the amount refunded."""

    return_id: Id
    original_receipt_id: Id | None = None
    reason: str | None = Field(None, max_length=500)
    refund_method: Literal["cash", "card", "voucher", "mobile", "gift_card", "store_credit"] = "card"


# ---- payments -------------------------------------------------------------------------------------


class PaymentProperties(_Priced, _Model):
    _amounts = ("amount",)

    payment_id: Id
    order_id: Id | None = None
    amount: Money
    currency: Currency = DEFAULT_CURRENCY
    method: str = "card"


class PaymentFailedProperties(PaymentProperties):
    reason_code: Id


class PaymentRefundedProperties(PaymentProperties):
    reason: str | None = Field(None, max_length=500)


class PaymentChargebackProperties(PaymentProperties):
    reason_code: Id


class InvoiceProperties(_Priced, _Model):
    _amounts = ("amount",)

    invoice_id: Id
    order_id: Id | None = None
    amount: Money
    currency: Currency = DEFAULT_CURRENCY
    due_at: AwareDatetime | None = None


class InvoicePaidProperties(_Priced, _Model):
    _amounts = ("amount",)

    invoice_id: Id
    amount: Money
    currency: Currency = DEFAULT_CURRENCY
    method: str = "card"


# ---- marketing engagement: Segment's e-mail and push lifecycle events -----------------------------


class EmailProperties(_Open):
    """What Segment's e-mail spec gives every e-mail event (the sender may add more)."""

    email_id: str | None = Field(None, max_length=200)
    email_subject: str | None = Field(None, max_length=1000)
    campaign_id: str | None = Field(None, max_length=200)
    campaign_name: str | None = Field(None, max_length=200)


class EmailLinkProperties(EmailProperties):
    link_id: str | None = Field(None, max_length=200)
    link_url: str | None = Field(None, max_length=2000)


class UnsubscribedProperties(EmailProperties):
    list_id: str | None = Field(None, max_length=200)
    list_name: str | None = Field(None, max_length=200)


class PushProperties(_Open):
    """Segment's mobile spec gives push events a ``campaign`` object (kept as sent); senders such as
    Customer.io add a flat ``campaign_id``, which crmhub reads."""

    campaign_id: str | None = Field(None, max_length=200)
    campaign_name: str | None = Field(None, max_length=200)


# ---- social, support, consent ---------------------------------------------------------------------


class SocialProperties(_Model):
    message_id: Id
    platform: Literal["twitter", "instagram", "facebook", "tiktok", "trustpilot", "other"]
    handle: Id
    text: Text
    sentiment: float | None = Field(None, ge=-1, le=1, description="-1 (angry) … 1 (delighted), from the source.")
    complaint: bool = Field(False, description="The source flagged it as a complaint.")
    url: str | None = None


class SocialCommentProperties(SocialProperties):
    post_id: str | None = Field(None, description="The brand's post the comment is on.")


class SocialMessageProperties(SocialProperties):
    thread_id: str | None = None


class ComplaintRespondedProperties(_Model):
    message_id: Id = Field(description="The social message (mention, comment, direct message) answered.")
    agent: str
    text: Text = ""


class CaseClosedProperties(_Model):
    """Closes the case ``case_id`` (opened by ``support.case_opened``): its first response if none came
    before; and the social complaint ``message_id``, if the case was about one."""

    case_id: Id
    message_id: Id | None = Field(None, description="The complaint the case was about, if it was one.")
    agent: str | None = None
    resolution: str | None = Field(None, max_length=2000)


# ---- service cases (from every channel) and feedback ----------------------------------------------

Priority = Literal["high", "normal", "low"]


class CaseOpenedProperties(_Model):
    """A service case opened by the helpdesk: a call, an e-mail, a chat, a visit to a store, a social post."""

    case_id: Id
    channel: Literal["phone", "email", "chat", "store", "social", "web"]
    category: str | None = Field(None, max_length=200, description='"repair", "delivery", "billing"…')
    priority: Priority | None = Field(None, description="The helpdesk's; None: crmhub's, as for complaints.")
    subject: str = Field("", max_length=1000)
    order_id: Id | None = None
    product_id: Id | None = None
    message_id: Id | None = Field(None, description="The social message it is about: that complaint's SLA times it.")
    agent: str | None = Field(None, max_length=200)


class NoteProperties(_Model):
    case_id: Id
    note_id: Id
    agent: str | None = Field(None, max_length=200, description="Who wrote it; None: the customer's message.")
    reply: bool = Field(False, description="Sent to the customer, not internal: a reply is the case's first response.")
    text: Text = ""

    @model_validator(mode="after")
    def _reply_by_agent(self) -> NoteProperties:
        if self.reply and not self.agent:
            raise ValueError("a reply to the customer needs the agent who sent it")
        return self


class SurveyProperties(_Model):
    """One answer to a survey (NPS, CSAT, or both), from the survey tool."""

    response_id: Id
    survey_id: Id | None = None
    nps: int | None = Field(None, ge=0, le=10, description="How likely to recommend us, 0-10.")
    csat: int | None = Field(None, ge=1, le=5, description="Satisfaction, 1 (very unhappy) … 5 (very happy).")
    text: Text = ""
    order_id: Id | None = None
    case_id: Id | None = None

    @model_validator(mode="after")
    def _answers_something(self) -> SurveyProperties:
        if self.nps is None and self.csat is None and not self.text:
            raise ValueError("a survey answer needs 'nps', 'csat' or 'text'")
        return self


class ReviewProperties(_Open):
    """Segment's ``Product Reviewed`` properties (the sender may add more); ``order_id`` is crmhub's."""

    product_id: Id
    review_id: Id
    rating: int = Field(ge=1, le=5, description="Stars, 1 … 5.")
    review_body: Text = ""
    order_id: Id | None = None


class ConsentProperties(_Model):
    channel: Literal["email", "sms", "phone", "push", "post"]
    purpose: str = Field("marketing", max_length=100)
    method: str | None = Field(None, max_length=200, description="How it was given or withdrawn.")


# What one identify (or group) may carry: the store keeps every trait, so each is bounded; an event over a
# limit is rejected whole (a dead letter naming the trait), never cut down silently.
MAX_TRAITS = 200
MAX_TRAIT_KEY_CHARS = 128
MAX_TRAIT_VALUE_BYTES = 1024  # the trait's value as JSON


def check_trait_limits(traits: dict[str, Any]) -> None:
    """Raise ValueError naming the first trait over a limit (see MAX_TRAITS and the two below it)."""
    if len(traits) > MAX_TRAITS:
        raise ValueError(f"{len(traits)} traits: at most {MAX_TRAITS} may be sent at once")
    for key, value in traits.items():
        if len(key) > MAX_TRAIT_KEY_CHARS:
            raise ValueError(f"trait name {key[:40]!r}… is longer than {MAX_TRAIT_KEY_CHARS} characters")
        if len(orjson.dumps(value, default=str)) > MAX_TRAIT_VALUE_BYTES:
            raise ValueError(f"trait {key!r} is larger than {MAX_TRAIT_VALUE_BYTES} bytes as JSON")


class _BoundedTraits(_Open):
    """Any traits, within the limits above (``json_schema_extra`` puts them in the JSON Schema too)."""

    model_config = ConfigDict(frozen=True, extra="allow", json_schema_extra={"maxProperties": MAX_TRAITS})

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_trait_limits(data)
        return data


class Traits(_BoundedTraits):
    model_config = ConfigDict(
        frozen=True, extra="allow", coerce_numbers_to_str=True, json_schema_extra={"maxProperties": MAX_TRAITS}
    )

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


class ContextTraits(_BoundedTraits):
    """Traits as a call's ``context`` repeats them: any, untyped, within the limits of every trait."""


class _Sparse(_Model):
    """Serialised without its unset (None) fields: most events carry few of them, and every byte of an
    event is paid on every internal topic."""

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {name: value for name, value in handler(self).items() if value is not None}


class Campaign(_Sparse):
    """The UTM parameters of a visit (Segment's ``context.campaign``; ``name`` is utm_campaign)."""

    source: str | None = Field(None, max_length=200)
    medium: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=200)


class EventContext(_Sparse):
    """What marketing keeps of a tracking call's ``context``, normalised by ingest (the rest of the
    context, the IP address included, is not kept). ``country`` is the one the sender resolved from the
    IP (``context.location.country``): crmhub never geolocates nor stores an IP."""

    campaign: Campaign | None = None
    referrer: str | None = Field(None, max_length=2000)
    device_type: str | None = Field(None, max_length=200, description='"mobile", "tablet", "desktop", "ios"…')
    locale: str | None = Field(None, max_length=200)
    timezone: str | None = Field(None, max_length=200)
    country: str | None = Field(None, max_length=200)
    traits: ContextTraits | None = Field(
        None, description="The person's traits a call other than identify carries (``context.traits``)."
    )


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
    input_seq: int | None = Field(
        None,
        ge=1,
        exclude_if=lambda value: value is None,
        description="Stamped by ingest: the input's place in the collector's intake journal (embedded broker), "
        "so the profile store folds an input produced again after a broker loss only once.",
    )
    context: EventContext | None = Field(None, exclude_if=lambda value: value is None)  # no bytes when absent

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


class Screen(Envelope):
    """A Segment screen call: the mobile apps' page, a screen of the app was viewed."""

    type: Literal["screen"]
    properties: PageProperties = PageProperties()


class GroupTraits(_BoundedTraits):
    name: str | None = Field(None, max_length=500)
    industry: str | None = None
    plan: str | None = None
    employees: int | None = Field(None, ge=0)
    website: str | None = None


class Group(Envelope):
    """A Segment group call: the person belongs to an account or organisation (a B2B buyer's company, an
    association); ``traits`` describe the group, not the person."""

    type: Literal["group"]
    group_id: Id
    traits: GroupTraits = GroupTraits()


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


class CartViewed(Envelope):
    type: Literal["Cart Viewed"]
    properties: CartProperties = CartProperties()


class CheckoutStarted(Envelope):
    type: Literal["Checkout Started"]
    properties: CheckoutProperties


class PaymentInfoEntered(Envelope):
    type: Literal["Payment Info Entered"]
    properties: PaymentInfoProperties = PaymentInfoProperties()


class OrderCompleted(Envelope):
    type: Literal["Order Completed"]
    properties: OrderProperties


class OrderRefunded(Envelope):
    type: Literal["Order Refunded"]
    properties: OrderRefundProperties


class OrderCancelled(Envelope):
    type: Literal["Order Cancelled"]
    properties: OrderCancelProperties


class PosSale(Envelope):
    type: Literal["pos.sale"]
    properties: PosSaleProperties


class PosReturn(Envelope):
    type: Literal["pos.return"]
    properties: PosReturnProperties


class PaymentAuthorised(Envelope):
    type: Literal["payment.authorised"]
    properties: PaymentProperties


class PaymentCaptured(Envelope):
    type: Literal["payment.captured"]
    properties: PaymentProperties


class PaymentFailed(Envelope):
    type: Literal["payment.failed"]
    properties: PaymentFailedProperties


class PaymentRefunded(Envelope):
    type: Literal["payment.refunded"]
    properties: PaymentRefundedProperties


class PaymentChargeback(Envelope):
    type: Literal["payment.chargeback"]
    properties: PaymentChargebackProperties


class InvoiceIssued(Envelope):
    type: Literal["payment.invoice_issued"]
    properties: InvoiceProperties


class InvoicePaid(Envelope):
    type: Literal["payment.invoice_paid"]
    properties: InvoicePaidProperties


class EmailEvent(Envelope):
    """What Segment's e-mail lifecycle events share; ``email`` is the address the message went to."""

    properties: EmailProperties = EmailProperties()


class EmailDelivered(EmailEvent):
    type: Literal["Email Delivered"]


class EmailOpened(EmailEvent):
    type: Literal["Email Opened"]


class EmailLinkClicked(EmailEvent):
    type: Literal["Email Link Clicked"]
    properties: EmailLinkProperties = EmailLinkProperties()


class EmailBounced(EmailEvent):
    type: Literal["Email Bounced"]


class EmailMarkedAsSpam(EmailEvent):
    type: Literal["Email Marked as Spam"]


class Unsubscribed(EmailEvent):
    type: Literal["Unsubscribed"]
    properties: UnsubscribedProperties = UnsubscribedProperties()


class PushEvent(Envelope):
    properties: PushProperties = PushProperties()


class PushNotificationReceived(PushEvent):
    type: Literal["Push Notification Received"]


class PushNotificationTapped(PushEvent):
    type: Literal["Push Notification Tapped"]


COMPLAINT_SENTIMENT = -0.5  # by default, a message this negative is a complaint even when not flagged as one


class SocialMessage(Envelope):
    """What mentions, comments and direct messages share: any of them may be a complaint."""

    properties: SocialProperties

    @property
    def is_complaint(self) -> bool:
        return self.complains(COMPLAINT_SENTIMENT)

    def complains(self, threshold: float) -> bool:
        """Flagged as a complaint by the source, or with a sentiment at or below ``threshold``."""
        sentiment = self.properties.sentiment
        return self.properties.complaint or (sentiment is not None and sentiment <= threshold)


class SocialMention(SocialMessage):
    type: Literal["social.mention"]


class SocialComment(SocialMessage):
    type: Literal["social.comment"]
    properties: SocialCommentProperties


class SocialDirectMessage(SocialMessage):
    type: Literal["social.direct_message"]
    properties: SocialMessageProperties


class ComplaintResponded(Envelope):
    type: Literal["support.complaint_responded"]
    properties: ComplaintRespondedProperties


class CaseClosed(Envelope):
    type: Literal["support.case_closed"]
    properties: CaseClosedProperties


class CaseOpened(Envelope):
    type: Literal["support.case_opened"]
    properties: CaseOpenedProperties


class NoteAdded(Envelope):
    type: Literal["support.note_added"]
    properties: NoteProperties


class SurveyAnswered(Envelope):
    type: Literal["survey.answered"]
    properties: SurveyProperties


class ProductReviewed(Envelope):
    """Segment's ``Product Reviewed`` (e-commerce spec), sent by the shop or its reviews service."""

    type: Literal["Product Reviewed"]
    properties: ReviewProperties


class ConsentGranted(Envelope):
    type: Literal["consent.granted"]
    properties: ConsentProperties


class ConsentWithdrawn(Envelope):
    type: Literal["consent.withdrawn"]
    properties: ConsentProperties


class ProfileMergedProperties(_Model):
    survivor_id: Id
    absorbed_id: Id
    linked_by: Literal["customer_id", "email", "phone", "loyalty_id", "anonymous_id"]


class ProfileMerged(Envelope):
    """Published by ingest (source ``crm``, keyed by the survivor) when an event links two known profiles:
    from now on the absorbed profile's identifiers resolve to the survivor, which takes over its history."""

    type: Literal["profile.merged"]
    properties: ProfileMergedProperties


# ---- the product catalogue and order fulfilment ---------------------------------------------------


class CatalogProductProperties(_Priced, _Model):
    """A product as the catalogue knows it (``product.upserted`` replaces the whole entry): what owned
    items on profiles read to date their warranty and their replacement."""

    _amounts = ("price",)

    product_id: Id
    name: str | None = Field(None, max_length=500)
    category: str | None = Field(None, max_length=200)
    price: Money | None = None
    currency: Currency = DEFAULT_CURRENCY
    warranty_months: int | None = Field(None, ge=0, le=1200, description="None: no warranty known.")
    lifespan_months: int | None = Field(
        None, ge=1, le=1200, description="Expected life: its owners are due a replacement this long after buying."
    )
    successor_id: Id | None = Field(None, description="The product that replaces this one, once there is one.")


class ProductUpserted(Envelope):
    """A product added to or changed in the catalogue (source ``catalog``, on ``crm.raw.catalog.v1``): about
    no customer, so ingest writes it to the catalogue instead of forwarding it. The entry of the latest
    ``occurred_at`` wins."""

    type: Literal["product.upserted"]
    properties: CatalogProductProperties


class ShipmentProperties(_Model):
    order_id: Id
    carrier: str | None = Field(None, max_length=200)
    tracking_number: str | None = Field(None, max_length=200)
    tracking_url: str | None = Field(None, max_length=2000)
    promised_by: AwareDatetime | None = Field(
        None, description="The delivery the shop promised: late once this passes without a delivery."
    )


class DeliveryProperties(_Model):
    order_id: Id
    carrier: str | None = Field(None, max_length=200)


class DeliveryFailedProperties(DeliveryProperties):
    reason: str | None = Field(None, max_length=500, description='"nobody home", "address not found"…')


class OrderReturnProperties(_Model):
    order_id: Id
    return_id: Id | None = None
    product_ids: list[Id] = Field([], max_length=1000, description="The products sent back; empty: the whole order.")
    reason: str | None = Field(None, max_length=500)


class OrderShipped(Envelope):
    type: Literal["order.shipped"]
    properties: ShipmentProperties


class OrderDelivered(Envelope):
    type: Literal["order.delivered"]
    properties: DeliveryProperties


class OrderDeliveryFailed(Envelope):
    type: Literal["order.delivery_failed"]
    properties: DeliveryFailedProperties


class OrderReturned(Envelope):
    """The goods of a web order came back (the money goes back with ``Order Refunded``)."""

    type: Literal["order.returned"]
    properties: OrderReturnProperties


# ---- association members: memberships and the association's own events ---------------------------


class MembershipProperties(_Priced, _Model):
    """A membership term begun (``membership.started``: joined, or joined again after a lapse) or renewed."""

    _amounts = ("fee",)

    membership_id: Id | None = Field(None, description="The membership system's id (a member number).")
    plan: Id
    fee: Money | None = Field(None, description="Paid for the term.")
    currency: Currency = DEFAULT_CURRENCY
    expires_at: AwareDatetime | None = Field(None, description="When the term ends; none: it does not (life).")


class MembershipEndProperties(_Model):
    membership_id: Id | None = None
    reason: str | None = Field(None, max_length=500)


class AssociationEventProperties(_Model):
    """One of the association's own events (a conference, a meetup, a course): not a tracking event."""

    event_id: Id = Field(description="The association's event, not the envelope's event_id.")
    event_name: str | None = Field(None, max_length=500)
    starts_at: AwareDatetime | None = None
    location: str | None = Field(None, max_length=500)


class MembershipStarted(Envelope):
    type: Literal["membership.started"]
    properties: MembershipProperties


class MembershipRenewed(Envelope):
    type: Literal["membership.renewed"]
    properties: MembershipProperties


class MembershipLapsed(Envelope):
    """The term ended without a renewal."""

    type: Literal["membership.lapsed"]
    properties: MembershipEndProperties = MembershipEndProperties()


class MembershipCancelled(Envelope):
    """The member (or the association) ended the membership."""

    type: Literal["membership.cancelled"]
    properties: MembershipEndProperties = MembershipEndProperties()


class AssociationEventRegistered(Envelope):
    type: Literal["association_event.registered"]
    properties: AssociationEventProperties


class AssociationEventAttended(Envelope):
    type: Literal["association_event.attended"]
    properties: AssociationEventProperties


class AssociationEventCancelled(Envelope):
    """The member's registration was cancelled (by the member, or with the event)."""

    type: Literal["association_event.cancelled"]
    properties: AssociationEventProperties


Event = Annotated[
    Identify
    | Page
    | Screen
    | Group
    | Alias
    | ProductViewed
    | ProductAdded
    | ProductRemoved
    | CartViewed
    | CheckoutStarted
    | PaymentInfoEntered
    | OrderCompleted
    | OrderRefunded
    | OrderCancelled
    | PosSale
    | PosReturn
    | PaymentAuthorised
    | PaymentCaptured
    | PaymentFailed
    | PaymentRefunded
    | PaymentChargeback
    | InvoiceIssued
    | InvoicePaid
    | SocialMention
    | SocialComment
    | SocialDirectMessage
    | ComplaintResponded
    | CaseClosed
    | ConsentGranted
    | ConsentWithdrawn
    | EmailDelivered
    | EmailOpened
    | EmailLinkClicked
    | EmailBounced
    | EmailMarkedAsSpam
    | Unsubscribed
    | PushNotificationReceived
    | PushNotificationTapped
    | ProfileMerged
    # the product catalogue and order fulfilment
    | ProductUpserted
    | OrderShipped
    | OrderDelivered
    | OrderDeliveryFailed
    | OrderReturned
    # association members
    | MembershipStarted
    | MembershipRenewed
    | MembershipLapsed
    | MembershipCancelled
    | AssociationEventRegistered
    | AssociationEventAttended
    | AssociationEventCancelled
    # service cases and feedback
    | CaseOpened
    | NoteAdded
    | SurveyAnswered
    | ProductReviewed,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_MODELS: tuple[type[Envelope], ...] = get_args(get_args(Event)[0])
EVENT_TYPES: tuple[str, ...] = tuple(get_args(m.model_fields["type"].annotation)[0] for m in EVENT_MODELS)


EVENT_BATCH_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


def decode_event_batch(data: bytes | str) -> list[Event]:
    """Decode a ``crm.events.v1`` record, a JSON array of events (raises pydantic.ValidationError).

    Records written by an older crmhub (an older schema version) are upcast first; the fast path,
    current events only, validates the JSON directly."""
    try:
        return EVENT_BATCH_ADAPTER.validate_json(data)
    except ValidationError:
        docs = orjson.loads(data)
        if not isinstance(docs, list) or all(
            not isinstance(d, dict) or d.get("schema_version", SCHEMA_VERSION) == SCHEMA_VERSION for d in docs
        ):
            raise
        return EVENT_BATCH_ADAPTER.validate_python([upcast(d) if isinstance(d, dict) else d for d in docs])


def validate_event(obj: dict[str, Any]) -> Event:
    return EVENT_ADAPTER.validate_python(obj)
