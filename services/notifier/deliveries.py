"""Pure failed-delivery rule: a recent order whose latest delivery attempt failed raises one alert at
once, for the team to rearrange the delivery.

The alert's id is derived from the order and the time of the failure, so every later change of the
profile yields the *same* alert (delivery sends it once), and a second failure of the same order a new
one. A failure the notifier reads more than :data:`NEWS_FOR` after it happened (a replay, a backfill) is
history, not news: no alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.outputs import Alert
from services.notifier.rules import alert_id, customer_summary
from services.notifier.view import ProfileDoc

NEWS_FOR = timedelta(days=2)


def delivery_alerts(profile: ProfileDoc, now: datetime) -> list[Alert]:
    alerts = []
    for order_id, order in (profile.get("recent_orders") or {}).items():
        at = order.get("status_at")
        if order.get("status") != "delivery_failed" or at is None or now - datetime.fromisoformat(at) > NEWS_FOR:
            continue
        carrier = order.get("carrier")
        alerts.append(
            Alert(
                alert_id=alert_id("delivery_failed", profile["profile_id"], order_id, at),
                kind="delivery_failed",
                profile_id=profile["profile_id"],
                raised_at=now,
                summary=f"delivery of order {order_id} failed" + (f" ({carrier})" if carrier else ""),
                details={
                    "order_id": order_id,
                    "failed_at": at,
                    "carrier": carrier,
                    "tracking_number": order.get("tracking_number"),
                    "customer": customer_summary(profile),
                },
            )
        )
    return alerts
