"""fold_events: orders once per id, exact money, order times, channels, cart, complaints, ids, determinism."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.events import EVENT_ADAPTER, Event
from schemas.profile import Cart, CartItem
from services.profile.facets.identity import MAX_IDS_PER_KIND
from services.profile.fold import fold_events
from tests.unit import factories as f
from tests.unit.factories import at


def test_an_order_is_counted_once_per_order_id() -> None:
    first = f.order("o-1", "100.00", minutes=1)
    redelivered = first.model_copy(update={"event_id": "ev-again"})
    p = fold_events(None, "P", [first, redelivered, f.order("o-2", "23.45", minutes=2), first])
    assert (p.order_count, p.web_orders, p.pos_orders) == (2, 2, 0)
    assert p.total_spent == Decimal("123.45")
    assert p.order_ids == ["o-1", "o-2"]
    assert p.version == 4  # every event counts towards the version, duplicates included


def test_total_spent_is_exact() -> None:
    raw = (
        b'{"event_id":"e%d","source":"web","type":"Order Completed","occurred_at":"2025-03-14T09:00:00Z",'
        b'"customer_id":"c","properties":{"order_id":"o%d","total":0.1}}'
    )
    events = [EVENT_ADAPTER.validate_json(raw % (i, i)) for i in range(3)]  # JSON floats: 0.1 + 0.1 + 0.1
    p = fold_events(None, "P", events)
    assert p.total_spent == Decimal("0.3")
    assert isinstance(p.total_spent, Decimal)


def test_revenue_counts_when_the_order_has_no_total() -> None:
    p = fold_events(None, "P", [f.order("o-1", extra={"revenue": "49.90"})])
    assert p.total_spent == Decimal("49.90")


def test_first_and_last_order_times_with_out_of_order_events() -> None:
    events = [f.order("o-2", "1", minutes=30), f.order("o-1", "1", minutes=10), f.order("o-3", "1", minutes=20)]
    p = fold_events(None, "P", events)
    assert (p.first_order_at, p.last_order_at) == (at(10), at(30))
    assert p.updated_at == at(30)
    assert p.created_at == at(30)  # the first event folded


def test_web_and_pos_orders_are_counted_apart() -> None:
    events = [
        f.order("o-1", "10.00", minutes=1),
        f.pos_sale("s-1", "r-1", "20.00", minutes=2),
        f.pos_sale("s-1", "r-1", "20.00", minutes=2),  # the same receipt again
        f.pos_sale("s-2", "r-1", "5.50", minutes=3),  # same receipt number, other store: another sale
    ]
    p = fold_events(None, "P", events)
    assert (p.order_count, p.web_orders, p.pos_orders) == (3, 1, 2)
    assert p.order_ids == ["o-1", "pos:s-1:r-1", "pos:s-2:r-1"]
    assert p.total_spent == Decimal("35.50")


def test_the_first_currency_seen_sticks() -> None:
    p = fold_events(None, "P", [f.order("o-1", "1", currency="EUR"), f.order("o-2", "1", currency="USD")])
    assert p.currency == "EUR"


def test_cart_adds_merge_by_product_and_value_is_exact() -> None:
    events = [
        f.added("p-1", "19.99", 1, minutes=1),
        f.added("p-2", "0.10", 3, minutes=2),
        f.added("p-1", "19.99", 2, minutes=3),
    ]
    p = fold_events(None, "P", events)
    assert [(i.product_id, i.quantity, i.price) for i in p.cart.items] == [
        ("p-1", 3, Decimal("19.99")),
        ("p-2", 3, Decimal("0.10")),
    ]
    assert p.cart.value == Decimal("60.27")
    assert p.cart.updated_at == at(3)
    assert p.cart.items[0].name == "name of p-1"


def test_adding_again_takes_the_latest_price() -> None:
    p = fold_events(None, "P", [f.added("p-1", "10.00", 1), f.added("p-1", "8.00", 1, minutes=1)])
    assert (p.cart.items[0].quantity, p.cart.items[0].price, p.cart.value) == (2, Decimal("8.00"), Decimal("16.00"))


def test_removing_lowers_the_quantity_then_drops_the_item() -> None:
    events = [f.added("p-1", "5.00", 3), f.added("p-2", "1.00", 1), f.removed("p-1", "5.00", 1, minutes=1)]
    p = fold_events(None, "P", events)
    assert [(i.product_id, i.quantity) for i in p.cart.items] == [("p-1", 2), ("p-2", 1)]
    assert p.cart.value == Decimal("11.00")
    p = fold_events(p, "P", [f.removed("p-1", "5.00", 5, minutes=2)])  # more than is left
    assert [(i.product_id, i.quantity) for i in p.cart.items] == [("p-2", 1)]
    assert (p.cart.value, p.cart.updated_at) == (Decimal("1.00"), at(2))


def test_a_web_order_clears_the_cart_and_remembers_when() -> None:
    p = fold_events(None, "P", [f.added("p-1", "5.00", 1), f.order("o-1", "5.00", minutes=1)])
    assert p.cart == Cart(cleared_at=at(1))
    assert (p.cart.items, p.cart.value, p.cart.updated_at) == ([], Decimal(0), None)


def test_a_cart_change_older_than_the_clearing_order_arrives_late_and_is_ignored() -> None:
    events = [
        f.added("p-1", "5.00", 1, minutes=1),
        f.order("o-1", "5.00", minutes=3),
        f.added("p-2", "1.00", minutes=2),
    ]
    p = fold_events(None, "P", events)
    assert p.cart == Cart(cleared_at=at(3))
    p = fold_events(p, "P", [f.added("p-3", "2.00", minutes=4)])  # a new cart after the order
    assert p.cart == Cart(
        items=[CartItem(product_id="p-3", name="name of p-3", price=Decimal("2.00"), quantity=1)],
        value=Decimal("2.00"),
        updated_at=at(4),
        cleared_at=at(3),
    )


def test_an_order_older_than_the_last_cart_change_counts_but_keeps_the_cart() -> None:
    p = fold_events(None, "P", [f.added("p-1", "5.00", 2, minutes=10), f.order("o-1", "7.00", minutes=5)])
    assert (p.order_count, p.web_orders, p.total_spent) == (1, 1, Decimal("7.00"))
    assert [(i.product_id, i.quantity) for i in p.cart.items] == [("p-1", 2)]
    assert (p.cart.value, p.cart.updated_at, p.cart.cleared_at) == (Decimal("10.00"), at(10), None)


def test_a_late_add_with_no_order_in_between_still_lands_in_the_cart() -> None:
    p = fold_events(None, "P", [f.added("p-1", "5.00", 1, minutes=10), f.added("p-2", "1.00", 1, minutes=9)])
    assert sorted(i.product_id for i in p.cart.items) == ["p-1", "p-2"]
    assert p.cart.value == Decimal("6.00")


def test_a_duplicate_order_does_not_clear_a_new_cart() -> None:
    events = [f.order("o-1", "5.00"), f.added("p-9", "2.00", 1, minutes=1), f.order("o-1", "5.00")]
    p = fold_events(None, "P", events)
    assert [i.product_id for i in p.cart.items] == ["p-9"]


def test_a_store_sale_leaves_the_web_cart_alone() -> None:
    p = fold_events(None, "P", [f.added("p-1", "5.00", 1), f.pos_sale("s-1", "r-1", "5.00", minutes=1)])
    assert [i.product_id for i in p.cart.items] == ["p-1"]


def test_complaints_open_until_answered() -> None:
    events = [
        f.mention("m-1", complaint=True, minutes=1),
        f.mention("m-2", sentiment=-0.8, minutes=2),  # negative enough without the flag
        f.mention("m-3", sentiment=0.7, minutes=3),  # praise: not a complaint
        f.mention("m-1", complaint=True, minutes=4),  # the same complaint again while open
        f.reply("m-1", minutes=5),
        f.reply("m-404", minutes=6),  # a reply to a mention we never saw
    ]
    p = fold_events(None, "P", events)
    assert [c.message_id for c in p.open_complaints] == ["m-2"]
    assert (p.open_complaints[0].sentiment, p.open_complaints[0].at) == (-0.8, at(2))
    assert p.complaints_total == 2
    assert p.complaints_open == 1


def test_payment_failures_count_and_keep_the_last_reason() -> None:
    events = [f.payment_failed("insufficient_funds", minutes=1), f.payment_failed("card_expired", minutes=2)]
    p = fold_events(None, "P", events)
    assert (p.payment_failures, p.last_payment_failure_reason) == (2, "card_expired")
    assert p.order_count == 0


def test_identifiers_accumulate_without_duplicates() -> None:
    events = [
        f.viewed("p-1", "1.00", anonymous_id="a-1"),
        f.viewed("p-1", "1.00", anonymous_id="a-2", email="ann@example.com"),
        f.pos_sale("s-1", "r-1", "1.00", loyalty_id="L-1", anonymous_id="a-1"),
    ]
    p = fold_events(None, "P", events)
    assert p.identifiers == {
        "customer_id": ["c-1"],
        "anonymous_id": ["a-1", "a-2"],
        "email": ["ann@example.com"],
        "loyalty_id": ["L-1"],
    }


def test_identifiers_per_kind_are_capped() -> None:
    events = [f.viewed("p", "1", anonymous_id=f"a-{i}", customer_id=None) for i in range(MAX_IDS_PER_KIND + 5)]
    p = fold_events(None, "P", events)
    assert p.identifiers["anonymous_id"] == [f"a-{i}" for i in range(MAX_IDS_PER_KIND)]


def test_identify_keeps_every_trait_and_takes_identifiers_from_the_envelope() -> None:
    # ingest lifts traits.email into the (normalised) envelope email; the fold reads identifiers there only
    events = [
        f.identify({"name": "Ann", "age": 31, "city": "Berlin", "plan": "gold"}, minutes=1),
        f.identify({"city": "Hamburg", "children": 2, "email": " Ann@Example.com"}, minutes=2, email="ann@example.com"),
    ]
    p = fold_events(None, "P", events)
    assert p.traits == {"name": "Ann", "age": 31, "city": "Hamburg", "children": 2, "plan": "gold"}  # no email
    assert p.identifiers["email"] == ["ann@example.com"]


def test_trait_identifiers_are_normalised_like_envelope_identifiers() -> None:
    event = f.identify(
        {"phone": "+1 (555) 123-4567", "email": "unknown"}, phone="+15551234567", email=None
    )  # what ingest makes of a Segment identify with these traits
    p = fold_events(None, "P", [event])
    assert p.identifiers == {"customer_id": ["c-1"], "phone": ["+15551234567"]}


def test_views_and_checkouts_touch_only_version_time_identifiers_and_browsing() -> None:
    base = fold_events(None, "P", [f.order("o-1", "5.00")])
    p = fold_events(base, "P", [f.viewed("p-1", "1.00", minutes=9), f.make("Checkout Started", properties={})])
    moved = {"version", "updated_at", "identifier_seen", "product_views", "recent_views"}
    assert p.model_dump(exclude=moved) == base.model_dump(exclude=moved)
    assert (p.version, p.updated_at, p.product_views) == (3, at(9), 1)
    assert [v.product_id for v in p.recent_views] == ["p-1"]


def test_the_input_profile_is_not_mutated() -> None:
    before = fold_events(None, "P", [f.added("p-1", "5.00", 2), f.mention("m-1", complaint=True)])
    snapshot = before.model_dump()
    after = fold_events(
        before,
        "P",
        [f.added("p-1", "5.00", 1, minutes=1), f.reply("m-1", minutes=2), f.identify({"age": 40}, email="x@y.z")],
    )
    assert before.model_dump() == snapshot
    assert after.cart.items[0].quantity == 3
    assert before.cart.items[0] == CartItem(product_id="p-1", name="name of p-1", price=Decimal("5.00"), quantity=2)


def test_folding_is_deterministic_and_batching_does_not_matter() -> None:
    events = [
        f.identify({"name": "Ann"}, anonymous_id="a-1"),
        f.added("p-1", "3.30", 2, minutes=1),
        f.order("o-1", "6.60", minutes=2),
        f.pos_sale("s-1", "r-9", "12.00", minutes=3),
        f.mention("m-1", complaint=True, minutes=4),
        f.payment_failed("declined", minutes=5),
    ]
    once = fold_events(None, "P", events)
    again = fold_events(None, "P", events)
    in_steps = fold_events(fold_events(None, "P", events[:3]), "P", events[3:])
    assert once.model_dump_json() == again.model_dump_json() == in_steps.model_dump_json()
    assert (once.version, once.order_count, once.total_spent) == (6, 2, Decimal("18.60"))


def test_fold_needs_a_profile_or_an_event() -> None:
    with pytest.raises(ValueError, match="needs a profile or at least one event"):
        fold_events(None, "P", [])
    p = fold_events(None, "P", [f.identify({})])
    same = fold_events(p, "P", [])
    assert same == p
    assert same is not p


def test_each_trait_keeps_its_latest_value_by_event_time_with_its_source() -> None:
    p = fold_events(
        None,
        "P",
        [
            f.identify({"city": "Paris", "age": 31}, minutes=10),
            f.identify({"city": "Berlin", "name": "Ann"}, minutes=5),  # older, told late
        ],
    )
    assert p.traits == {"city": "Paris", "age": 31, "name": "Ann"}
    assert (p.trait_sources["city"].source, p.trait_sources["city"].at) == ("web", at(10))
    assert p.trait_sources["name"].at == at(5)


def test_folding_onto_a_stored_profile_leaves_it_untouched() -> None:
    def history(start: float, email: str, order_id: str) -> list[Event]:
        return [
            f.identify({"email": email, "plan": order_id}, minutes=start),
            f.added("p-1", "5.00", minutes=start + 1),
            f.viewed("p-2", "7.00", minutes=start + 2),
            f.order(order_id, "12.00", minutes=start + 3),
            f.consent("email", minutes=start + 4),
            f.pos_sale("s-1", f"r-{order_id}", "3.00", minutes=start + 5),
        ]

    stored = fold_events(None, "c-1", history(0, "a@example.com", "o-1"))
    before = stored.model_dump()
    later = fold_events(stored, "c-1", history(10, "b@example.com", "o-2"))
    assert stored.model_dump() == before
    assert later.model_dump() != before
