"""Order fulfilment: shipment events set each recent order's status (the latest by time wins, whatever the
order of arrival), one about an order not folded yet waits for it, merge keeps the later news, and the
segment fields read the statuses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from crmhub.core.conditions.fields import profile_view
from schemas.events import Event
from schemas.profile import Profile
from services.profile.fold import fold_events
from services.profile.merge import merge_profiles
from tests.unit import factories as f
from tests.unit.profile import events as ev


def fold(*events: Event, pid: str = "p-1") -> Profile:
    return fold_events(None, pid, events)


def shipped(order_id: str = "o-1", minutes: float = 10, **props: Any) -> Event:
    props = {"carrier": "DHL", "tracking_number": "T-1", "promised_by": f.at(3 * 24 * 60).isoformat(), **props}
    return f.make("order.shipped", properties={"order_id": order_id, **props}, minutes=minutes)


def news(type_: str, order_id: str = "o-1", minutes: float = 20, **props: Any) -> Event:
    return f.make(type_, properties={"order_id": order_id, **props}, minutes=minutes)


def test_an_order_goes_from_placed_to_shipped_to_delivered() -> None:
    placed = fold(ev.order("o-1", "10.00"))
    assert placed.recent_orders["o-1"].status == "placed"
    p = fold(ev.order("o-1", "10.00"), shipped())
    o = p.recent_orders["o-1"]
    assert (o.status, o.status_at, o.carrier, o.tracking_number) == ("shipped", f.at(10), "DHL", "T-1")
    assert o.promised_by == f.at(3 * 24 * 60)
    view = profile_view(p.model_dump(mode="json"))
    assert (view["orders_in_transit"], view["delivery_promises"]) == (1, (f.at(3 * 24 * 60),))
    done = fold(ev.order("o-1", "10.00"), shipped(), news("order.delivered"))
    view = profile_view(done.model_dump(mode="json"))
    assert done.recent_orders["o-1"].status == "delivered"
    assert (view["orders_in_transit"], view["delivery_promises"]) == (0, ())  # a late-delivery trigger finds none


def test_a_failed_delivery_counts_until_a_later_attempt_succeeds() -> None:
    failed = fold(ev.order("o-1", "10.00"), shipped(), news("order.delivery_failed", reason="nobody home"))
    assert profile_view(failed.model_dump(mode="json"))["failed_deliveries"] == 1
    again = fold_events(failed, "p-1", [news("order.delivered", minutes=60 * 24)])
    assert profile_view(again.model_dump(mode="json"))["failed_deliveries"] == 0


def test_the_latest_event_by_time_wins_whatever_the_order_of_arrival() -> None:
    p = fold(ev.order("o-1", "10.00"), news("order.delivered", minutes=30), shipped(minutes=10))
    o = p.recent_orders["o-1"]
    assert (o.status, o.status_at, o.carrier) == ("delivered", f.at(30), "DHL")  # the shipment's facts still count


def test_news_before_its_order_waits_for_it_and_the_order_takes_it_over() -> None:
    p = fold(shipped(minutes=10), ev.order("o-1", "10.00", minutes=0))
    o = p.recent_orders["o-1"]
    assert (o.status, o.amount, o.carrier) == ("shipped", 10, "DHL")
    assert (p.order_count, p.total_spent) == (1, 10)  # counted once, as any order


def test_a_return_marks_the_order_returned_with_its_products() -> None:
    p = fold(ev.order("o-1", "10.00"), news("order.returned", product_ids=["a"]), news("order.returned", minutes=30))
    o = p.recent_orders["o-1"]
    assert (o.status, o.returned_products) == ("returned", ("a",))
    assert p.refund_count == 0 and p.net_revenue == 10  # the goods came back; the money goes with Order Refunded


def test_merge_keeps_the_later_news_of_an_order_both_profiles_remember() -> None:
    ours = fold(ev.order("o-1", "10.00"), shipped())
    theirs = fold(ev.order("o-1", "10.00"), news("order.delivered", minutes=50), pid="p-2")
    merged = merge_profiles(ours, theirs)
    o = merged.recent_orders["o-1"]
    assert (o.status, o.status_at, merged.order_count) == ("delivered", f.at(50), 1)
    assert merge_profiles(theirs, ours).recent_orders["o-1"].status == "delivered"


def test_the_fulfilment_of_an_order_is_in_the_exported_profile() -> None:
    doc = fold(ev.order("o-1", "10.00"), shipped()).model_dump(mode="json")
    assert doc["recent_orders"]["o-1"]["status"] == "shipped"
    assert doc["recent_orders"]["o-1"]["promised_by"] == (f.T0 + timedelta(days=3)).isoformat().replace("+00:00", "Z")
