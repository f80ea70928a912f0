"""What the alert rules share: deterministic alert ids, the customer summary, and a bounded id memory.

An alert's id is derived from its cause (the order and window of failed payments, the survey answer; a
journey's message: the journey, the profile, the occurrence and the step), so a retry, a replay or a
restart always produces the same id and delivery can drop what it has delivered before.
"""

from __future__ import annotations

import hashlib
from typing import Any

from services.notifier.view import ProfileDoc


def alert_id(kind: str, *cause: str) -> str:
    """``<kind>:<24 hex digits of a SHA-256 of the cause>``."""
    return f"{kind}:" + hashlib.sha256("\x1f".join(cause).encode()).hexdigest()[:24]


def customer_summary(profile: ProfileDoc) -> dict[str, Any]:
    """What support sees of the customer in an alert: value, orders, open complaints and cases, RFM."""
    rfm = profile.get("rfm") or {}
    return {
        "total_spent": str(profile.get("total_spent", "0")),
        "currency": profile.get("currency"),
        "order_count": profile.get("order_count", 0),
        "open_complaints": len(profile.get("open_complaints") or []),
        "open_cases": sum(1 for c in profile.get("open_cases") or [] if c.get("opened_at")),
        "rfm": rfm.get("score"),
    }


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
