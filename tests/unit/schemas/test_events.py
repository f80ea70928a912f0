"""The event contract: the discriminated union, envelope rules, payload rules and SocialMention.is_complaint."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    ComplaintResponded,
    Identify,
    MembershipRenewed,
    OrderCompleted,
    OrderProperties,
    OrderRefundProperties,
    PosSale,
    PosSaleProperties,
    Product,
    ProductAdded,
    SocialMention,
    SocialMessage,
    Traits,
    validate_event,
)
from schemas.profile import OpenComplaint, Profile
from tests.unit import factories as f


def test_event_types_lists_every_payload_model_in_order() -> None:
    web = (
        "identify",
        "page",
        "screen",
        "group",
        "alias",
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Cart Viewed",
    )
    web += ("Checkout Started", "Payment Info Entered", "Order Completed", "Order Refunded", "Order Cancelled")
    stores = ("pos.sale", "pos.return")
    payment = ("payment.authorised", "payment.captured", "payment.failed", "payment.refunded", "payment.chargeback")
    payment += ("payment.invoice_issued", "payment.invoice_paid")
    social = ("social.mention", "social.comment", "social.direct_message")
    rest = ("support.complaint_responded", "support.case_closed", "consent.granted", "consent.withdrawn")
    fulfilment = ("order.shipped", "order.delivered", "order.delivery_failed", "order.returned")
    email = ("Email Delivered", "Email Opened", "Email Link Clicked", "Email Bounced", "Email Marked as Spam")
    engagement = (*email, "Unsubscribed", "Push Notification Received", "Push Notification Tapped")
    members = ("membership.started", "membership.renewed", "membership.lapsed", "membership.cancelled")
    members += ("association_event.registered", "association_event.attended", "association_event.cancelled")
    assert (
        *web,
        *stores,
        *payment,
        *social,
        *rest,
        *engagement,
        "profile.merged",
        "product.upserted",
        *fulfilment,
        *members,
        *("support.case_opened", "support.note_added", "survey.answered", "Product Reviewed"),
    ) == EVENT_TYPES


@pytest.mark.parametrize(
    ("event", "cls"),
    [
        (f.identify({"name": "Ann"}), Identify),
        (f.added("p-1", "9.99"), ProductAdded),
        (f.order("o-1", "10.00"), OrderCompleted),
        (f.pos_sale("s-1", "r-1", "5.00"), PosSale),
        (f.mention("m-1"), SocialMention),
        (f.reply("m-1"), ComplaintResponded),
    ],
)
def test_decode_event_round_trips_to_the_model_named_by_type(event: object, cls: type) -> None:
    assert isinstance(event, cls)
    decoded = EVENT_ADAPTER.validate_json(event.model_dump_json())  # type: ignore[attr-defined]
    assert type(decoded) is cls
    assert decoded == event


def test_decode_event_rejects_an_unknown_type() -> None:
    doc = f.envelope("pos.refund", properties={})
    with pytest.raises(ValidationError) as info:
        validate_event(doc)
    assert info.value.errors()[0]["type"] == "union_tag_invalid"


def test_envelope_forbids_unknown_fields() -> None:
    with pytest.raises(ValidationError) as info:
        validate_event(f.envelope("identify", favourite_colour="blue"))
    assert info.value.errors()[0]["loc"] == ("identify", "favourite_colour")


def test_product_payload_keeps_extra_properties() -> None:
    event = validate_event(
        f.envelope("Product Viewed", properties={"product_id": "p-1", "price": "1.50", "brand": "Acme"})
    )
    assert event.properties.model_extra == {"brand": "Acme"}  # type: ignore[union-attr]
    assert event.properties.price == Decimal("1.50")  # type: ignore[union-attr]


def test_native_payload_forbids_extra_properties() -> None:
    doc = f.envelope("support.complaint_responded", properties={"message_id": "m", "agent": "a", "mood": "grumpy"})
    with pytest.raises(ValidationError) as info:
        validate_event(doc)
    assert info.value.errors()[0]["loc"] == ("support.complaint_responded", "properties", "mood")


def test_occurred_at_must_carry_a_time_zone() -> None:
    with pytest.raises(ValidationError) as info:
        validate_event(f.envelope("identify", occurred_at="2025-03-14T09:00:00"))
    assert info.value.errors()[0]["type"] == "timezone_aware"


@pytest.mark.parametrize(
    ("field", "value"),
    [("total", "-0.01"), ("total", "lots"), ("currency", "dollars"), ("currency", "ABC"), ("currency", "XAU")],
)
def test_order_money_and_currency_rules(field: str, value: str) -> None:
    props = {"order_id": "o-1", "total": "1.00", field: value}
    with pytest.raises(ValidationError) as info:
        validate_event(f.envelope("Order Completed", properties=props))
    assert info.value.errors()[0]["loc"] == ("Order Completed", "properties", field)


def test_order_amount_prefers_total_over_revenue() -> None:
    event = f.order("o-1", "12.00", extra={"revenue": "10.00"})
    assert event.properties.amount == Decimal("12.00")  # type: ignore[union-attr]


def test_order_amount_falls_back_to_revenue() -> None:
    event = f.order("o-1", extra={"revenue": "10.50"})
    assert event.properties.amount == Decimal("10.50")  # type: ignore[union-attr]


def test_order_without_total_or_revenue_is_invalid() -> None:
    with pytest.raises(ValidationError, match="an order needs 'total', 'revenue' or priced 'products'"):
        f.order("o-1")


@pytest.mark.parametrize(
    ("complaint", "sentiment", "expected"),
    [
        (False, None, False),
        (True, None, True),
        (False, -0.5, True),  # the threshold itself counts
        (False, -0.49, False),
        (True, 0.9, True),
    ],
)
def test_is_complaint(complaint: bool, sentiment: float | None, expected: bool) -> None:
    event = f.mention("m-1", complaint=complaint, sentiment=sentiment)
    assert isinstance(event, SocialMention)
    assert event.is_complaint is expected


def test_sentiment_outside_minus_one_to_one_is_invalid() -> None:
    with pytest.raises(ValidationError) as info:
        f.mention("m-1", sentiment=-1.5)
    assert info.value.errors()[0]["loc"] == ("social.mention", "properties", "sentiment")


def test_identifiers_lists_only_the_ones_set() -> None:
    event = f.make("identify", customer_id="c-9", email="ann@example.com", anonymous_id="", phone=None)
    assert event.identifiers() == {"customer_id": "c-9", "email": "ann@example.com"}


def test_events_are_frozen() -> None:
    event = f.identify({})
    with pytest.raises(ValidationError):
        event.customer_id = "someone-else"  # type: ignore[misc]
    assert event.customer_id == "c-1"


def test_profile_complaints_open_counts_open_mentions() -> None:
    open_ = [OpenComplaint(message_id=m, platform="twitter", handle="@a", text="bad", at=f.T0) for m in ("m-1", "m-2")]
    profile = Profile(profile_id="p", created_at=f.T0, updated_at=f.T0, open_complaints=open_)
    assert profile.complaints_open == 2


def test_segment_spec_leniency_for_clients_we_have_not_seen() -> None:
    # every product field is optional in the Segment spec: sku stands in for product_id, price defaults to 0
    assert Product.model_validate({"sku": "SKU-1"}).product_id == "SKU-1"
    assert Product.model_validate({"product_id": "p"}).price == Decimal(0)
    with pytest.raises(ValidationError):
        Product.model_validate({"name": "no id at all"})
    # lower-case currencies, and an order whose amount is only in its products
    order = OrderProperties.model_validate(
        {"order_id": "o", "currency": "eur", "products": [{"sku": "a", "price": "2.50", "quantity": 2}]}
    )
    assert (order.currency, order.amount) == ("EUR", Decimal("5.00"))
    with pytest.raises(ValidationError, match="needs 'total', 'revenue' or priced 'products'"):
        OrderProperties.model_validate({"order_id": "o"})
    # SDKs send phone numbers as JSON numbers
    assert Traits.model_validate({"phone": 4915112345678}).phone == "4915112345678"


@pytest.mark.parametrize(
    ("currency", "total", "expected"),
    [
        ("EUR", "19.999", "20.00"),
        ("eur", 19.99, "19.99"),  # a JSON float, exact in its minor units
        ("EUR", "0.125", "0.12"),  # half-even, like banks
        ("JPY", "1200.4", "1200"),
        ("KWD", "1.2345", "1.234"),
        ("USD", 7, "7.00"),
    ],
)
def test_money_is_rounded_to_the_minor_units_of_an_iso_4217_currency(
    currency: str, total: object, expected: str
) -> None:
    props = {"order_id": "o-1", "total": total, "currency": currency}
    order = validate_event(f.envelope("Order Completed", properties=props)).properties
    assert isinstance(order, OrderProperties)
    assert str(order.total) == expected and order.currency == currency.upper()


def test_items_and_tenders_take_the_currency_of_their_receipt() -> None:
    props = {
        "store_id": "s",
        "till_id": "t",
        "receipt_id": "r",
        "total": "1500",
        "currency": "JPY",
        "line_items": [{"product_id": "p", "price": "499.6", "quantity": 3}],
        "tenders": [{"method": "voucher", "amount": "500"}, {"method": "card", "amount": "1000.2"}],
    }
    sale = validate_event(f.envelope("pos.sale", source="pos", properties=props)).properties
    assert isinstance(sale, PosSaleProperties)
    assert (sale.line_items[0].price, sale.line_items[0].currency) == (Decimal(500), "JPY")
    assert [(t.method, t.amount) for t in sale.tenders] == [("voucher", Decimal(500)), ("card", Decimal(1000))]


def _payload(kind: str) -> dict[str, object]:
    money = {"amount": "10.00", "currency": "EUR"}
    social = {"message_id": "m-1", "platform": "instagram", "handle": "@ann", "text": "where is my parcel?"}
    return {
        "Cart Viewed": {"cart_id": "c-1", "products": [{"product_id": "p", "price": 1}]},
        "Payment Info Entered": {"checkout_id": "k-1", "payment_method": "paypal"},
        "Order Refunded": {"order_id": "o-1", "total": "5.00"},
        "Order Cancelled": {"order_id": "o-1", "reason": "changed my mind"},
        "pos.return": {"store_id": "s", "till_id": "t", "return_id": "x-1", "original_receipt_id": "r-1", "total": 3},
        "payment.authorised": {"payment_id": "pay-1", "order_id": "o-1", **money},
        "payment.captured": {"payment_id": "pay-1", "order_id": "o-1", **money},
        "payment.refunded": {"payment_id": "pay-1", "reason": "returned", **money},
        "payment.chargeback": {"payment_id": "pay-1", "reason_code": "fraudulent", **money},
        "payment.invoice_issued": {"invoice_id": "i-1", "due_at": "2025-04-14T00:00:00Z", **money},
        "payment.invoice_paid": {"invoice_id": "i-1", "method": "transfer", **money},
        "social.comment": {**social, "post_id": "post-9", "sentiment": -0.8},
        "social.direct_message": {**social, "thread_id": "t-9", "complaint": True},
        "support.case_closed": {"case_id": "case-1", "message_id": "m-1", "resolution": "refunded"},
        "consent.granted": {"channel": "email"},
        "consent.withdrawn": {"channel": "sms", "method": "replied STOP"},
        "Email Opened": {"email_id": "e-1", "campaign_id": "spring", "campaign_name": "Spring sale"},
        "Email Link Clicked": {"email_id": "e-1", "campaign_id": "spring", "link_url": "https://shop.example/s"},
        "Unsubscribed": {"email_id": "e-1", "list_id": "news", "list_name": "Newsletter"},
        "Push Notification Tapped": {"campaign": {"name": "Spring sale", "medium": "push"}},  # the mobile spec's
        "membership.renewed": {
            "plan": "standard",
            "fee": "60",
            "currency": "EUR",
            "expires_at": "2026-03-14T00:00:00Z",
        },
        "membership.lapsed": {"membership_id": "M-1", "reason": "not renewed"},
        "association_event.registered": {"event_id": "agm-2026", "event_name": "AGM", "starts_at": "2026-05-01T18:00Z"},
        "support.case_opened": {"case_id": "case-1", "channel": "phone", "priority": "high", "order_id": "o-1"},
        "support.note_added": {"case_id": "case-1", "note_id": "n-1", "agent": "anna.k", "reply": True, "text": "hi"},
        "survey.answered": {"response_id": "r-1", "nps": 3, "csat": 2, "text": "slow", "case_id": "case-1"},
        "Product Reviewed": {"product_id": "p", "review_id": "v-1", "rating": 2, "review_body": "meh", "extra": 1},
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "Cart Viewed",
        "Payment Info Entered",
        "Order Refunded",
        "Order Cancelled",
        "pos.return",
        "payment.authorised",
        "payment.captured",
        "payment.refunded",
        "payment.chargeback",
        "payment.invoice_issued",
        "payment.invoice_paid",
        "social.comment",
        "social.direct_message",
        "support.case_closed",
        "consent.granted",
        "consent.withdrawn",
        "Email Opened",
        "Email Link Clicked",
        "Unsubscribed",
        "Push Notification Tapped",
        "membership.renewed",
        "membership.lapsed",
        "association_event.registered",
        "support.case_opened",
        "support.note_added",
        "survey.answered",
        "Product Reviewed",
    ],
)
def test_every_new_event_type_validates_and_round_trips(kind: str) -> None:
    event = validate_event(f.envelope(kind, properties=_payload(kind)))
    assert event.type == kind
    assert EVENT_ADAPTER.validate_json(event.model_dump_json()) == event


def test_a_reply_needs_its_agent_and_a_survey_answer_something() -> None:
    note = {"case_id": "case-1", "note_id": "n-1", "reply": True}
    with pytest.raises(ValidationError, match="needs the agent"):
        validate_event(f.envelope("support.note_added", properties=note))
    assert validate_event(f.envelope("support.note_added", properties={**note, "reply": False})).type
    with pytest.raises(ValidationError, match="needs 'nps', 'csat' or 'text'"):
        validate_event(f.envelope("survey.answered", properties={"response_id": "r-1", "case_id": "case-1"}))


def test_comments_and_direct_messages_can_be_complaints_too() -> None:
    comment = validate_event(f.envelope("social.comment", properties=_payload("social.comment")))
    dm = validate_event(f.envelope("social.direct_message", properties=_payload("social.direct_message")))
    assert isinstance(comment, SocialMessage) and comment.is_complaint  # by sentiment
    assert isinstance(dm, SocialMessage) and dm.is_complaint  # flagged


def test_a_refund_without_an_amount_is_a_full_refund() -> None:
    refund = validate_event(f.envelope("Order Refunded", properties={"order_id": "o-1"})).properties
    assert isinstance(refund, OrderRefundProperties) and refund.amount is None


def test_consent_is_per_known_channel() -> None:
    with pytest.raises(ValidationError) as info:
        validate_event(f.envelope("consent.granted", properties={"channel": "pigeon"}))
    assert info.value.errors()[0]["loc"] == ("consent.granted", "properties", "channel")


def test_a_membership_fee_is_exact_money_and_a_plan_is_required() -> None:
    props = {"plan": "standard", "fee": 59.999, "currency": "JPY"}
    renewed = validate_event(f.envelope("membership.renewed", properties=props))
    assert isinstance(renewed, MembershipRenewed)
    assert (renewed.properties.fee, renewed.properties.expires_at) == (Decimal(60), None)  # rounded to yen
    with pytest.raises(ValidationError):
        validate_event(f.envelope("membership.started", properties={"fee": "60.00"}))
