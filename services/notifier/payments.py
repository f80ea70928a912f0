"""Pure payment-failure rule: failed payments of one order (of one payment, without an order id) within a
window of the first collapse into one alert carrying their count.

The alert's id is derived from the order and the time of the window's first failure, so every later
failure of the window yields the *same* alert with a higher count: delivery sends it once, and the alert
log takes the higher count (see ``docs/alerts.md``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import groupby

from schemas.outputs import Alert
from services.notifier.rules import alert_id, customer_summary
from services.notifier.view import PaymentFailureDoc, ProfileDoc


def _order_key(failure: PaymentFailureDoc) -> str:
    return f"order:{failure['order_id']}" if failure.get("order_id") else f"payment:{failure['payment_id']}"


def windows(failures: list[PaymentFailureDoc], window: timedelta) -> list[list[PaymentFailureDoc]]:
    """The profile's failures grouped per order and window: a window starts at a failure and holds the
    failures of the same order less than ``window`` after it."""
    out: list[list[PaymentFailureDoc]] = []
    ordered = sorted(failures, key=lambda f: (_order_key(f), f["at"], f["payment_id"]))
    for _key, same_order in groupby(ordered, key=_order_key):
        current: list[PaymentFailureDoc] = []
        for f in same_order:
            if current and datetime.fromisoformat(f["at"]) - datetime.fromisoformat(current[0]["at"]) >= window:
                out.append(current)
                current = []
            current.append(f)
        out.append(current)
    return out


def payment_alerts(profile: ProfileDoc, window: timedelta, now: datetime) -> list[Alert]:
    """One alert per order and window of the profile's recent failed payments, with their count."""
    alerts = []
    for group in windows(profile.get("recent_payment_failures") or [], window):
        first, last = group[0], group[-1]
        order = first.get("order_id")
        alerts.append(
            Alert(
                alert_id=alert_id("payment_failed", profile["profile_id"], _order_key(first), first["at"]),
                kind="payment_failed",
                profile_id=profile["profile_id"],
                raised_at=now,
                summary=f"payment of {last['amount']} {last['currency']} failed"
                + (f" for order {order}" if order else "")
                + f" ({last['reason']})"
                + (f", {len(group)} times" if len(group) > 1 else ""),
                details={
                    "order_id": order,
                    "count": len(group),
                    "first_at": first["at"],
                    "last_at": last["at"],
                    "amount": str(last["amount"]),
                    "currency": last["currency"],
                    "reason": last["reason"],
                    "payment_ids": [f["payment_id"] for f in group],
                    "customer": customer_summary(profile),
                },
            )
        )
    return alerts
