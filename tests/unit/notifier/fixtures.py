"""Alerts for the delivery tests; profile documents and rules for the state machine's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.outputs import Alert
from services.notifier.complaints import SlaPolicy
from services.notifier.machine import Rules
from services.notifier.state import ProfileTimers
from services.notifier.view import ProfileDoc

RAISED = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def complaint(n: int = 1, profile_id: str = "P1", **details: Any) -> Alert:
    return Alert(
        alert_id=f"complaint:{n:024x}",
        kind="complaint",
        profile_id=profile_id,
        raised_at=RAISED,
        summary="complaint on twitter by @angry: My order <never> arrived & I'm cross",
        details={"platform": "twitter", "message_id": f"m-{n}", "customer": {"total_spent": "120.00", "order_count": 3},
                 **details},
    )  # fmt: skip


def cart(n: int = 1, profile_id: str = "P1") -> Alert:
    return Alert(
        alert_id=f"cart_abandoned:{n:024x}",
        kind="cart_abandoned",
        profile_id=profile_id,
        raised_at=RAISED,
        summary="cart with 2 item(s) worth 30.00 EUR abandoned",
        details={"items": 2, "value": "30.00", "currency": "EUR", "email": "ann@example.com"},
    )


HOUR = timedelta(hours=1)
RULES = Rules(
    delays={"cart_abandoned": HOUR, "browse_abandoned": 2 * HOUR},
    sla=SlaPolicy({"high": 60.0, "normal": 600.0, "low": 3600.0}, Decimal(1000)),
    payment_window=HOUR,
)
CART_AT = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
EMPTY = ProfileTimers("P")


def with_cart(at: datetime = CART_AT, version: int = 1, **extra: Any) -> ProfileDoc:
    items = [{"product_id": "p-1", "quantity": 2, "price": "1.50"}]
    basket = {"items": items, "value": "3.00", "updated_at": at.isoformat()}
    return {"profile_id": "P", "version": version, "cart": basket, **extra}


def emptied(version: int) -> ProfileDoc:
    return {"profile_id": "P", "version": version, "cart": {"items": [], "value": "0", "updated_at": None}}


def complaining(*message_ids: str, version: int = 1) -> ProfileDoc:
    at = CART_AT.isoformat()
    said = {"platform": "x", "handle": "ann", "text": "late", "sentiment": -0.6, "at": at}  # normal priority
    opened = [{"message_id": m, **said} for m in message_ids]
    return {"profile_id": "P", "version": version, "open_complaints": opened}
