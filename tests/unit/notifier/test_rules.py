"""Alert rules: when a cart is pending, when it is due, deterministic alert ids, complaint alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.notifier.rules import PendingCart, RecentIds, cart_alert, complaint_alerts, pending_cart
from services.profile.fold import fold_events
from tests.unit import factories as f
from tests.unit.factories import at

DELAY = timedelta(hours=1)
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def published(*events: Any) -> dict[str, Any]:
    return fold_events(None, "P", events).model_dump(mode="json")


def cart_profile(updated_at: str = "2025-03-14T09:00:00Z", **extra: Any) -> dict[str, Any]:
    cart = {"items": [{"product_id": "p-1", "quantity": 2}], "value": "3.00", "updated_at": updated_at}
    return {"profile_id": "P", "cart": cart, **extra}


@pytest.mark.parametrize(
    "profile",
    [
        {"profile_id": "P"},
        {"profile_id": "P", "cart": {"items": [], "value": "0", "updated_at": "2025-03-14T09:00:00Z"}},
        {"profile_id": "P", "cart": {"items": [{"quantity": 0}], "updated_at": "2025-03-14T09:00:00Z"}},
        {"profile_id": "P", "cart": {"items": [{"quantity": 1}], "updated_at": None}},
    ],
    ids=["no-cart", "empty-cart", "zero-quantity", "no-update-time"],
)
def test_nothing_is_pending_without_items(profile: dict[str, Any]) -> None:
    assert pending_cart(profile, DELAY) is None


def test_an_ordered_cart_is_not_pending() -> None:
    assert pending_cart(published(f.added("p-1", "5.00"), f.order("o-1", "5.00", minutes=1)), DELAY) is None


def test_a_cart_is_due_its_delay_after_its_last_change() -> None:
    profile = published(
        f.added("p-1", "19.99", 2, email="ann@example.com", minutes=1),
        f.added("p-2", "0.02", 1, email="second@example.com", minutes=7),
        f.order("o-0", "1.00", currency="EUR", minutes=0),  # older than the cart: sets the currency only
    )
    assert pending_cart(profile, DELAY) == PendingCart(
        profile_id="P",
        cart_updated_at=at(7),
        due_at=at(67),
        items=3,
        value="40.00",
        currency="EUR",
        email="ann@example.com",
    )
    assert Decimal(pending_cart(profile, DELAY).value) == Decimal("40.00")  # type: ignore[union-attr]


def test_pending_cart_round_trips_through_json() -> None:
    cart = pending_cart(cart_profile(currency="USD"), DELAY)
    assert cart is not None
    doc = cart.to_json()
    assert doc["cart_updated_at"] == "2025-03-14T09:00:00+00:00"
    assert doc["due_at"] == "2025-03-14T10:00:00+00:00"
    assert PendingCart.from_json(doc) == cart


def test_the_cart_alert_id_is_deterministic_per_cart_change() -> None:
    first = pending_cart(cart_profile(), DELAY)
    other_delay = pending_cart(cart_profile(), timedelta(minutes=5))
    changed = pending_cart(cart_profile("2025-03-14T09:00:01Z"), DELAY)
    other_customer = pending_cart({**cart_profile(), "profile_id": "Q"}, DELAY)
    assert first is not None and other_delay is not None and changed is not None and other_customer is not None
    assert first.alert_id.startswith("cart_abandoned:")
    assert len(first.alert_id) == len("cart_abandoned:") + 24
    assert first.alert_id == pending_cart(cart_profile(), DELAY).alert_id  # type: ignore[union-attr]
    assert first.alert_id == other_delay.alert_id  # the delay is no part of the cause
    assert first.due_at != other_delay.due_at
    assert changed.alert_id != first.alert_id
    assert other_customer.alert_id != first.alert_id


def test_cart_alert_carries_the_cart() -> None:
    cart = pending_cart(cart_profile(currency="EUR", identifiers={"email": ["ann@example.com"]}), DELAY)
    assert cart is not None
    alert = cart_alert(cart, NOW)
    assert (alert.alert_id, alert.kind, alert.profile_id, alert.raised_at) == (
        cart.alert_id,
        "cart_abandoned",
        "P",
        NOW,
    )
    assert alert.summary == "cart with 2 item(s) worth 3.00 EUR abandoned"
    assert alert.details == {
        "items": 2,
        "value": "3.00",
        "currency": "EUR",
        "email": "ann@example.com",
        "cart_updated_at": "2025-03-14T09:00:00+00:00",
    }


def test_cart_alert_summary_without_a_currency() -> None:
    cart = pending_cart(cart_profile(), DELAY)
    assert cart is not None
    assert cart_alert(cart, NOW).summary == "cart with 2 item(s) worth 3.00 abandoned"


def with_complaints(*complaints: dict[str, Any]) -> dict[str, Any]:
    return {"profile_id": "P", "total_spent": "120.50", "order_count": 3, "open_complaints": list(complaints)}


def complaint(mention: str = "m-1", platform: str = "twitter", **kw: Any) -> dict[str, Any]:
    return {
        "message_id": mention,
        "platform": platform,
        "handle": "@@ann",
        "text": "late again",
        "sentiment": -0.2,
        "at": "2026-01-01T10:00:00+00:00",
        **kw,
    }


def test_each_open_complaint_raises_an_alert_with_the_customer_summary() -> None:
    text = "x" * 200
    alerts = complaint_alerts(with_complaints(complaint(platform="instagram", text=text), complaint("m-2")), NOW)
    assert [a.details["message_id"] for a in alerts] == ["m-1", "m-2"]
    alert = alerts[0]
    assert (alert.kind, alert.profile_id, alert.raised_at) == ("complaint", "P", NOW)
    assert alert.summary == "complaint on instagram by @ann: " + "x" * 120
    assert alert.details == {
        "platform": "instagram",
        "handle": "@@ann",
        "message_id": "m-1",
        "text": text,
        "sentiment": -0.2,
        "at": "2026-01-01T10:00:00+00:00",
        "customer": {"total_spent": "120.50", "order_count": 3, "open_complaints": 2},
    }


def test_no_open_complaints_no_alert() -> None:
    assert complaint_alerts({"profile_id": "P"}, NOW) == []
    assert complaint_alerts(with_complaints(), NOW) == []


def test_the_complaint_alert_id_is_deterministic_per_mention() -> None:
    first = complaint_alerts(with_complaints(complaint()), NOW)[0]
    later = complaint_alerts(with_complaints(complaint(text="edited")), NOW + timedelta(hours=1))[0]
    other_mention = complaint_alerts(with_complaints(complaint("m-2")), NOW)[0]
    other_platform = complaint_alerts(with_complaints(complaint(platform="facebook")), NOW)[0]
    assert first.alert_id.startswith("complaint:")
    assert first.alert_id == later.alert_id
    assert len({first.alert_id, other_mention.alert_id, other_platform.alert_id}) == 3


def test_recent_ids_forget_the_oldest_beyond_capacity() -> None:
    ids = RecentIds(2)
    for item in ("a", "b", "c"):
        ids.add(item)
    assert ("a" in ids, "b" in ids, "c" in ids) == (False, True, True)
