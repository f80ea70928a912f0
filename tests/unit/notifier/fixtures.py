"""Alerts for the delivery tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.outputs import Alert

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
