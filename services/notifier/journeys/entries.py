"""The journey runner's table entries: when one is next due, whether a write would change it, whether an
enrollment may still act, the customer an engine call is made for. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from crmhub.core.conditions.fields import LazyView
from services.notifier.customers import Fresh
from services.notifier.journeys.definition import Journey
from services.notifier.journeys.gates import Customer
from services.notifier.journeys.state import Enrollment

KEEP_ENDED = timedelta(days=30)  # an ended enrollment kept (for replays of its occurrence: outlasts any)


def due_at(journey: Journey, enrollment: Enrollment, old: Mapping[str, Any] | None, now: datetime) -> float | None:
    """When the entry is next due: an active enrollment when its wait ends; an ended one when it may be
    forgotten (:data:`KEEP_ENDED` after it ended, longer if the re-entry rule or the goal's window asks
    for it), never if the re-entry rule is "never" (the entry is what keeps the customer out)."""
    if enrollment.active:
        return enrollment.due_at.timestamp() if enrollment.due_at else None
    if journey.reentry == "never":
        return None
    if old is not None and old.get("ended") is not None:
        return cast(float | None, old.get("due"))  # it ended before: the time it got then stands
    kept = [KEEP_ENDED, journey.goal.within if journey.goal else KEEP_ENDED]
    kept += [journey.reentry] if isinstance(journey.reentry, timedelta) else []
    return (now + max(kept)).timestamp()


def is_due(doc: Mapping[str, Any], now: datetime) -> bool:
    return doc.get("due") is not None and doc["due"] <= now.timestamp()


def same(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    return old is not None and all(old.get(name) == value for name, value in new.items())


def may_act(journey: Journey, enrollment: Enrollment, now: datetime) -> bool:
    """Active, or its goal's window still open (an event may convert it)."""
    if enrollment.active:
        return True
    goal, first = journey.goal, enrollment.first_sent_at
    return goal is not None and first is not None and not enrollment.converted and now <= first + goal.within


def customer_of(fresh: Fresh, pid: str, doc: Mapping[str, Any]) -> Customer | None:
    """The customer for an engine call (None: erased, or merged into another profile)."""
    if fresh.erased or (fresh.profile is not None and fresh.profile.get("merged_into")):
        return None
    record = dict(fresh.profile) if fresh.profile is not None else {"profile_id": pid}
    return Customer(LazyView(record), frozenset(fresh.segments), sent_of(doc), record)


def sent_of(doc: Mapping[str, Any]) -> tuple[datetime, ...]:
    """When the customer's capped messages went out (their ``journey-customers`` entry)."""
    return tuple(datetime.fromisoformat(at) for at in doc["sent"])
