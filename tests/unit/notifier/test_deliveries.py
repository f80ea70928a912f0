"""Failed deliveries: one alert at once per order and failure, none for old news."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.notifier.deliveries import NEWS_FOR, delivery_alerts
from services.profile.fold import fold_events
from tests.unit import factories as f


def published(*events: Any) -> dict[str, Any]:
    return fold_events(None, "P", events).model_dump(mode="json")


def failed(minutes: float, order_id: str = "o-1") -> Any:
    return f.make("order.delivery_failed", properties={"order_id": order_id, "reason": "nobody home"}, minutes=minutes)


def test_a_failed_delivery_raises_one_alert_per_failure() -> None:
    shipped = f.make("order.shipped", properties={"order_id": "o-1", "carrier": "DPD"}, minutes=1)
    doc = published(f.order("o-1", "10.00"), shipped, failed(5))
    (alert,) = delivery_alerts(doc, f.at(6))
    assert (alert.kind, alert.profile_id, alert.details["carrier"]) == ("delivery_failed", "P", "DPD")
    assert alert.summary == "delivery of order o-1 failed (DPD)"
    assert delivery_alerts(doc, f.at(60))[0].alert_id == alert.alert_id  # every later change: the same alert
    again = published(f.order("o-1", "10.00"), shipped, failed(5), failed(24 * 60))
    assert delivery_alerts(again, f.at(24 * 60 + 1))[0].alert_id != alert.alert_id  # a second failure


def test_no_alert_once_delivered_nor_for_old_news() -> None:
    delivered = f.make("order.delivered", properties={"order_id": "o-1"}, minutes=9)
    assert delivery_alerts(published(f.order("o-1", "10.00"), failed(5), delivered), f.at(10)) == []
    late = f.at(5) + NEWS_FOR + timedelta(minutes=1)
    assert delivery_alerts(published(f.order("o-1", "10.00"), failed(5)), late) == []
