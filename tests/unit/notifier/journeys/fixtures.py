"""Journeys, customers and occurrences for the journey engine's tests, with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crmhub.core.conditions.fields import profile_view
from services.notifier.journeys.catalog import parse_journey
from services.notifier.journeys.definition import Journey
from services.notifier.journeys.gates import Customer
from services.notifier.journeys.triggers import Occurrence, event_occurrence

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday, 14:00 in Berlin (summer time)
CONSENTED = {"email": True, "sms": False, "phone": False, "push": False, "post": False}


def journey(**fields: Any) -> Journey:
    """A journey triggered by an order, with one e-mail step, changed by ``fields``."""
    doc: dict[str, Any] = {
        "id": "j",
        "trigger": {"event": "Order Completed"},
        "steps": [{"name": "mail", "send": "email", "consent": "email", "template": "Hi {{ profile.city }}"}],
    }
    return parse_journey({**doc, **fields})


def customer(sent: tuple[datetime, ...] = (), segments: frozenset[str] = frozenset(), **fields: Any) -> Customer:
    """Profile P1, consented to e-mail, in Berlin, with ``fields`` of the segment view changed."""
    view = {**profile_view({"profile_id": "P1"}), "consent": CONSENTED, "timezone": "Europe/Berlin", "city": "Bonn"}
    return Customer({**view, **fields}, segments, sent)


def order(event_id: str = "e1", at: datetime = NOW, **properties: Any) -> Occurrence:
    return event_occurrence("Order Completed", event_id, {"order_id": "o1", **properties}, at)
