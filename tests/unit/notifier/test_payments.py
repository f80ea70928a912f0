"""Payment failures: one alert per order and window, with the count of failures in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.notifier.payments import payment_alerts
from services.profile.fold import fold_events
from tests.unit import factories as f

WINDOW = timedelta(minutes=30)
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def published(*events: Any) -> dict[str, Any]:
    return fold_events(None, "P", events).model_dump(mode="json")


def test_repeated_failures_of_an_order_within_the_window_are_one_alert_with_a_count() -> None:
    first = [f.payment_failed("declined", "49.90", order_id="o-1", minutes=0)]
    more = [
        f.payment_failed("insufficient_funds", "49.90", order_id="o-1", minutes=10),
        f.payment_failed("expired", "49.90", order_id="o-1", minutes=29),
    ]
    (alert,) = payment_alerts(published(*first), WINDOW, NOW)
    (collapsed,) = payment_alerts(published(*first, *more), WINDOW, NOW)
    assert collapsed.alert_id == alert.alert_id and alert.alert_id.startswith("payment_failed:")
    assert (alert.details["count"], collapsed.details["count"]) == (1, 3)
    assert collapsed.kind == "payment_failed" and collapsed.profile_id == "P"
    assert collapsed.summary == "payment of 49.90 USD failed for order o-1 (expired), 3 times"
    assert alert.summary == "payment of 49.90 USD failed for order o-1 (declined)"
    assert collapsed.details["reason"] == "expired" and collapsed.details["order_id"] == "o-1"
    assert len(collapsed.details["payment_ids"]) == 3


def test_a_failure_after_the_window_or_of_another_order_is_another_alert() -> None:
    events = [
        f.payment_failed("declined", order_id="o-1", minutes=0),
        f.payment_failed("declined", order_id="o-1", minutes=30),  # the window is over: a new one
        f.payment_failed("declined", order_id="o-2", minutes=1),
        f.payment_failed("declined", minutes=2),  # no order: its payment alone
        f.payment_failed("declined", minutes=3),
    ]
    alerts = payment_alerts(published(*events), WINDOW, NOW)
    assert len(alerts) == 5 and len({a.alert_id for a in alerts}) == 5
    assert all(a.details["count"] == 1 for a in alerts)


def test_the_order_events_arrive_in_does_not_change_the_alerts() -> None:
    events = [f.payment_failed("declined", order_id="o-1", minutes=m) for m in (0, 20, 40, 45)]
    forwards = payment_alerts(published(*events), WINDOW, NOW)
    backwards = payment_alerts(published(*reversed(events)), WINDOW, NOW)
    assert [(a.alert_id, a.details["count"]) for a in forwards] == [(a.alert_id, a.details["count"]) for a in backwards]
    assert [a.details["count"] for a in forwards] == [2, 2]  # minutes 0 and 20; 40 and 45
    assert payment_alerts({"profile_id": "P"}, WINDOW, NOW) == []
