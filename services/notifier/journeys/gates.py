"""What may stop or hold a customer in a journey, checked against the customer as they are now: exit
criteria (before every step), consent per channel, quiet hours in the customer's zone, and the frequency
cap across journeys. Pure: ``now`` is given, the customer is read, nothing is changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from schemas.facets.consent import consented_contacts
from services.notifier.journeys.definition import Journey, Policy
from services.notifier.journeys.parsing import ANY_CHANNEL
from services.notifier.journeys.state import Enrollment
from services.notifier.journeys.timing import quiet_until, zone
from services.notifier.journeys.triggers import SegmentTrigger, still_current


@dataclass(frozen=True)
class Customer:
    """The customer as the wiring reads them for a call: the segment view of the profile
    (:class:`crmhub.core.conditions.fields.LazyView`: a field computed when read), the segments they are
    in, when the messages to them (customer-facing, across journeys) went out, newest last, as far back
    as the cap's period, and the stored profile as published (JSON; empty: none at hand)."""

    view: Mapping[str, Any]
    segments: frozenset[str] = frozenset()
    sent: Sequence[datetime] = field(default_factory=tuple)
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def profile_id(self) -> str:
        return str(self.view["profile_id"])

    def zone(self, policy: Policy) -> ZoneInfo:
        """The profile's time zone, else the policy's."""
        return zone(self.view.get("timezone"), policy.zone)


def consented(view: Mapping[str, Any], channel: str) -> bool:
    """The profile's consent for ``channel`` (the segment view's, marketing first; ``any``: for some channel)."""
    granted = view.get("consent") or {}
    return any(granted.values()) if channel == ANY_CHANNEL else bool(granted.get(channel))


def contact(customer: Customer, channel: str) -> dict[str, str | None] | None:
    """Where a message needing consent for ``channel`` goes: the channel and its address (None: no consent).
    ``any``: the first channel with marketing consent and an address on the stored profile."""
    addresses = consented_contacts(customer.record)
    if channel == ANY_CHANNEL:
        first = next(iter(addresses), None)
        return None if first is None else {"channel": first, "address": addresses[first]}
    return {"channel": channel, "address": addresses.get(channel)} if consented(customer.view, channel) else None


def exit_reason(journey: Journey, enrollment: Enrollment, customer: Customer, now: datetime) -> str | None:
    """Why the customer leaves the journey now (None: they stay). Checked before every step."""
    criteria, view = journey.exit, customer.view
    for condition in criteria.when:
        if condition.holds(view, now):
            return f"when: {condition.text}"
    ordered = view.get("last_order_at")
    if criteria.ordered_since_entry and isinstance(ordered, datetime) and ordered > _triggered_at(enrollment):
        return "ordered"
    trigger = journey.trigger
    if criteria.left_segment and isinstance(trigger, SegmentTrigger) and trigger.segment not in customer.segments:
        return "left_segment"
    if criteria.left_trigger and not still_current(trigger, enrollment.occurrence, view, customer.record, now):
        return "left_trigger"
    if criteria.consent_withdrawn and not all(consented(view, c) for c in journey.consent_channels()):
        return "consent_withdrawn"
    return None


def _triggered_at(enrollment: Enrollment) -> datetime:
    at = enrollment.trigger.get("at")
    return datetime.fromisoformat(at) if isinstance(at, str) else enrollment.entered_at


def quiet_hours_end(policy: Policy, customer: Customer, now: datetime) -> datetime | None:
    """When the quiet hours that hold for the customer at ``now`` end (None: not quiet now)."""
    quiet = policy.quiet_hours
    return None if quiet is None else quiet_until(now, quiet.start, quiet.end, customer.zone(policy))


def capped(policy: Policy, sent: Sequence[datetime], now: datetime) -> bool:
    """The customer has had the cap's number of messages within its period."""
    cap = policy.cap
    return cap is not None and sum(1 for at in sent if now - at < cap.per) >= cap.messages
