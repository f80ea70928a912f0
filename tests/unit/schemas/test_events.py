"""The event contract: the discriminated union, envelope rules, payload rules and SocialMention.is_complaint."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    Identify,
    OrderCompleted,
    OrderProperties,
    PosSale,
    Product,
    ProductAdded,
    SocialMention,
    SupportReplied,
    Traits,
    validate_event,
)
from schemas.profile import OpenComplaint, Profile
from tests.unit import factories as f


def test_event_types_lists_every_payload_model_in_order() -> None:
    assert EVENT_TYPES == (
        "identify",
        "page",
        "alias",
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Checkout Started",
        "Order Completed",
        "pos.sale",
        "payment.failed",
        "social.mention",
        "support.replied",
    )


@pytest.mark.parametrize(
    ("event", "cls"),
    [
        (f.identify({"name": "Ann"}), Identify),
        (f.added("p-1", "9.99"), ProductAdded),
        (f.order("o-1", "10.00"), OrderCompleted),
        (f.pos_sale("s-1", "r-1", "5.00"), PosSale),
        (f.mention("m-1"), SocialMention),
        (f.reply("m-1"), SupportReplied),
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
    doc = f.envelope("support.replied", properties={"mention_id": "m", "agent": "a", "mood": "grumpy"})
    with pytest.raises(ValidationError) as info:
        validate_event(doc)
    assert info.value.errors()[0]["loc"] == ("support.replied", "properties", "mood")


def test_occurred_at_must_carry_a_time_zone() -> None:
    with pytest.raises(ValidationError) as info:
        validate_event(f.envelope("identify", occurred_at="2025-03-14T09:00:00"))
    assert info.value.errors()[0]["type"] == "timezone_aware"


@pytest.mark.parametrize(
    ("field", "value"),
    [("total", "-0.01"), ("total", "1.00001"), ("currency", "dollars")],
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
    open_ = [OpenComplaint(mention_id=m, platform="twitter", handle="@a", text="bad", at=f.T0) for m in ("m-1", "m-2")]
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
