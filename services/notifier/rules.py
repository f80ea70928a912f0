"""Pure alert rules: when a cart counts as abandoned, when a mention needs support, and the alerts' ids.

An alert's id is derived from its cause (the cart's last change, the mention), so a retry, a replay or
a restart always produces the same id and sinks can drop what they have delivered before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.outputs import Alert


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


class RecentIds:
    """A bounded set of the most recently added ids (oldest forgotten first)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: dict[str, None] = {}

    def __contains__(self, item: str) -> bool:
        return item in self._ids

    def add(self, item: str) -> None:
        self._ids[item] = None
        if len(self._ids) > self.capacity:
            del self._ids[next(iter(self._ids))]


@dataclass(frozen=True)
class PendingCart:
    """A cart with items, waiting for its delay to pass without an order."""

    profile_id: str
    cart_updated_at: datetime
    due_at: datetime
    items: int
    value: str
    currency: str | None
    email: str | None

    @property
    def alert_id(self) -> str:
        return "cart_abandoned:" + _digest(self.profile_id, self.cart_updated_at.isoformat())

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "cart_updated_at": self.cart_updated_at.isoformat(), "due_at": self.due_at.isoformat()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PendingCart:
        return cls(
            **{
                **doc,
                "cart_updated_at": datetime.fromisoformat(doc["cart_updated_at"]),
                "due_at": datetime.fromisoformat(doc["due_at"]),
            }
        )


def pending_cart(profile: dict[str, Any], delay: timedelta) -> PendingCart | None:
    """The abandonment timer a profile's current cart calls for; None when there is nothing to wait for."""
    cart = profile.get("cart") or {}
    items = sum(int(i.get("quantity", 0)) for i in cart.get("items") or [])
    if items == 0 or not cart.get("updated_at"):
        return None
    updated = datetime.fromisoformat(cart["updated_at"])
    emails = (profile.get("identifiers") or {}).get("email") or []
    return PendingCart(
        profile_id=profile["profile_id"],
        cart_updated_at=updated,
        due_at=updated + delay,
        items=items,
        value=str(cart.get("value", "0")),
        currency=profile.get("currency"),
        email=emails[0] if emails else None,
    )


def cart_alert(cart: PendingCart, now: datetime) -> Alert:
    return Alert(
        alert_id=cart.alert_id,
        kind="cart_abandoned",
        profile_id=cart.profile_id,
        raised_at=now,
        summary=f"cart with {cart.items} item(s) worth {' '.join(filter(None, [cart.value, cart.currency]))} abandoned",
        details={
            "items": cart.items,
            "value": cart.value,
            "currency": cart.currency,
            "email": cart.email,
            "cart_updated_at": cart.cart_updated_at.isoformat(),
        },
    )


def complaint_alerts(profile: dict[str, Any], now: datetime) -> list[Alert]:
    """One alert per open complaint of the profile; the id depends on the mention only, so the alert
    is the same however often the profile changes while the complaint stays open."""
    summary = {
        "total_spent": str(profile.get("total_spent", "0")),
        "order_count": profile.get("order_count", 0),
        "open_complaints": len(profile.get("open_complaints") or []),
    }
    alerts = []
    for c in profile.get("open_complaints") or []:
        alerts.append(
            Alert(
                alert_id="complaint:" + _digest(c["platform"], c["message_id"]),
                kind="complaint",
                profile_id=profile["profile_id"],
                raised_at=now,
                summary=f"complaint on {c['platform']} by @{c['handle'].lstrip('@')}: {c['text'][:120]}",
                details={
                    "platform": c["platform"],
                    "handle": c["handle"],
                    "message_id": c["message_id"],
                    "text": c["text"],
                    "sentiment": c.get("sentiment"),
                    "at": c["at"],
                    "customer": summary,
                },
            )
        )
    return alerts
