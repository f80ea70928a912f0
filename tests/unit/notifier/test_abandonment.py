"""Cart and browse abandonment: what is pending, when it is due, the re-check at send time, the alert
with the consented contact channel and the segments (internal without any consent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notifier.abandonment import (
    Pending,
    abandonment_alert,
    contact_channel,
    pending_browse,
    pending_cart,
    still_due,
)
from services.profile.fold import fold_events
from tests.unit import factories as f
from tests.unit.factories import at

DELAY = timedelta(hours=1)
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def published(*events: Any) -> dict[str, Any]:
    return fold_events(None, "P", events).model_dump(mode="json")


def cart_profile(updated_at: str = "2025-03-14T09:00:00Z", **extra: Any) -> dict[str, Any]:
    cart = {"items": [{"product_id": "p-1", "quantity": 2, "price": "1.50"}], "value": "3.00", "updated_at": updated_at}
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


def test_a_cart_is_due_its_delay_after_its_last_change_with_its_items_and_value() -> None:
    profile = published(
        f.added("p-1", "19.99", 2, email="ann@example.com", minutes=1),
        f.added("p-2", "0.02", 1, minutes=7),
        f.order("o-0", "1.00", currency="EUR", minutes=0),  # older than the cart: sets the currency only
    )
    cart = pending_cart(profile, DELAY)
    assert cart is not None
    assert (cart.kind, cart.profile_id, cart.since, cart.due_at) == ("cart_abandoned", "P", at(7), at(67))
    assert cart.details == {
        "items": [
            {"product_id": "p-1", "name": "name of p-1", "category": None, "price": "19.99", "quantity": 2},
            {"product_id": "p-2", "name": "name of p-2", "category": None, "price": "0.02", "quantity": 1},
        ],
        "item_count": 3,
        "value": "40.00",
        "currency": "EUR",
        "contact": None,
    }


def test_pending_round_trips_through_json_and_its_id_depends_on_the_cause_only() -> None:
    cart = pending_cart(cart_profile(currency="USD"), DELAY)
    assert cart is not None
    doc = cart.to_json()
    assert (doc["since"], doc["due_at"]) == ("2025-03-14T09:00:00+00:00", "2025-03-14T10:00:00+00:00")
    assert Pending.from_json(doc) == cart and Pending.from_json(doc).details == cart.details
    other_delay = pending_cart(cart_profile(), timedelta(minutes=5))
    changed = pending_cart(cart_profile("2025-03-14T09:00:01Z"), DELAY)
    other_customer = pending_cart({**cart_profile(), "profile_id": "Q"}, DELAY)
    assert other_delay is not None and changed is not None and other_customer is not None
    assert cart.alert_id.startswith("cart_abandoned:") and cart.alert_id == other_delay.alert_id
    assert len({cart.alert_id, changed.alert_id, other_customer.alert_id}) == 3


def test_the_contact_channel_is_the_first_consented_one_with_an_address() -> None:
    ids = {"identifiers": {"email": ["ann@example.com"], "phone": ["+4915112345678"]}}
    granted = {"granted": True, "at": "2025-01-01T00:00:00Z", "source": "web"}
    withdrawn = {**granted, "granted": False}
    assert contact_channel({**ids, "consent": {"email": {"marketing": granted}}}) == {
        "channel": "email",
        "address": "ann@example.com",
    }
    sms_only = {"email": {"marketing": withdrawn}, "sms": {"marketing": granted}}
    assert contact_channel({**ids, "consent": sms_only}) == {"channel": "sms", "address": "+4915112345678"}
    # consent without an address to use, or for another purpose, or for push (no address needed)
    assert contact_channel({"consent": {"email": {"marketing": granted}}}) is None
    assert contact_channel({**ids, "consent": {"email": {"service": granted}}}) is None
    assert contact_channel({"consent": {"push": {"marketing": granted}}}) == {"channel": "push", "address": None}
    assert contact_channel({**ids}) is None


def test_consent_folded_from_events_gives_the_channel() -> None:
    profile = published(
        f.added("p-1", "5.00", email="ann@example.com"),
        f.consent("email", minutes=1),
        f.consent("email", granted=False, minutes=2),
        f.consent("push", minutes=3),
    )
    assert contact_channel(profile) == {"channel": "push", "address": None}


def test_the_alert_carries_items_value_contact_and_segments() -> None:
    granted = {"email": {"marketing": {"granted": True, "at": "2025-01-01T00:00:00Z", "source": "web"}}}
    profile = cart_profile(currency="EUR", identifiers={"email": ["ann@example.com"]}, consent=granted)
    cart = pending_cart(profile, DELAY)
    assert cart is not None
    alert = abandonment_alert(cart, None, ["vip", "big_spenders"], NOW)
    assert (alert.alert_id, alert.kind, alert.profile_id, alert.raised_at) == (
        cart.alert_id,
        "cart_abandoned",
        "P",
        NOW,
    )
    assert alert.summary == "cart with 2 item(s) worth 3.00 EUR abandoned" and not alert.internal
    assert alert.details["contact"] == {"channel": "email", "address": "ann@example.com"}
    assert alert.details["segments"] == ["big_spenders", "vip"]
    assert alert.details["items"] == [
        {"product_id": "p-1", "name": None, "category": None, "price": "1.50", "quantity": 2}
    ]
    assert (alert.details["value"], alert.details["since"]) == ("3.00", "2025-03-14T09:00:00+00:00")


def test_without_consent_the_alert_is_internal_and_the_freshest_consent_counts() -> None:
    granted = {"email": {"marketing": {"granted": True, "at": "2025-01-01T00:00:00Z", "source": "web"}}}
    profile = cart_profile(identifiers={"email": ["ann@example.com"]}, consent=granted)
    cart = pending_cart(profile, DELAY)
    assert cart is not None
    withdrawn = {**profile, "consent": {"email": {"marketing": {**granted["email"]["marketing"], "granted": False}}}}
    alert = abandonment_alert(cart, withdrawn, [], NOW)  # withdrawn while the timer ran
    assert alert.internal and alert.details["contact"] is None
    assert alert.summary == "cart with 2 item(s) worth 3.00 abandoned (no consent to contact: internal)"


def test_the_cancel_condition_is_rechecked_on_the_freshest_profile() -> None:
    events = [f.added("p-1", "5.00", minutes=1)]
    cart = pending_cart(published(*events), DELAY)
    assert cart is not None
    assert still_due(cart, None, DELAY)  # nothing newer at hand: the table's state stands
    assert still_due(cart, published(*events, f.viewed("p-2", "1.00", minutes=2)), DELAY)
    assert not still_due(cart, published(*events, f.order("o-1", "5.00", minutes=2)), DELAY)
    assert not still_due(cart, published(*events, f.removed("p-1", "5.00", minutes=2)), DELAY)
    assert not still_due(cart, published(*events, f.added("p-2", "1.00", minutes=2)), DELAY)  # restarted


def test_browse_abandonment_views_without_a_cart_or_a_later_order() -> None:
    views = [f.viewed("p-1", "10.00", minutes=1), f.viewed("p-2", "20.00", minutes=4)]
    browse = pending_browse(published(*views), DELAY)
    assert browse is not None
    assert (browse.kind, browse.since, browse.due_at) == ("browse_abandoned", at(4), at(64))
    assert [v["product_id"] for v in browse.details["viewed"]] == ["p-2", "p-1"]
    assert browse.alert_id != pending_browse(published(views[0]), DELAY).alert_id  # type: ignore[union-attr]
    assert pending_browse(published(*views, f.added("p-2", "20.00", minutes=5)), DELAY) is None  # a cart: other kind
    assert pending_browse(published(*views, f.order("o-1", "20.00", minutes=5)), DELAY) is None
    assert pending_browse(published(f.order("o-1", "20.00", minutes=0), *views), DELAY) is not None  # older order
    assert pending_browse(published(f.identify({"name": "Ann"})), DELAY) is None
    alert = abandonment_alert(browse, None, [], NOW)
    assert alert.kind == "browse_abandoned" and alert.summary.startswith("2 product(s) viewed, nothing bought")
    assert alert.internal  # no consent
