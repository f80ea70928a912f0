"""What starts a journey: a segment entered or exited, an event of a type (with a condition on its
properties, in the segment language), a profile date arriving (a date field plus an offset, once or
yearly, at a local time of day), a state of the profile (a condition on it, each value of a field one
occurrence: the cart as of its last change), or each item of a list on the profile (an open complaint).

The wiring turns what it reads into an :class:`Occurrence` (a membership change, an event, the date due
for a profile: :func:`date_occurrence`) and hands it to the engine; :func:`fires` says whether it starts a
journey and :func:`occurrence_key` which occurrence it is, so that one occurrence enters once however
often it is read again. A date is scheduled per profile (the next occurrence's instant), never scanned.

The two profile triggers are read from every profile change (:func:`profile_occurrences`), and what they
found is re-read when a wait ends (:func:`still_current`, the ``left_trigger`` exit): a cart emptied or
changed since, a complaint answered since, is no longer the occurrence the customer entered on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Tag, field_validator

from crmhub.core.conditions.fields import FIELD_TYPES
from schemas.events import EVENT_TYPES
from schemas.profile import SEGMENT_FIELDS, Profile
from services.notifier.journeys.parsing import Duration, Name, ProfileCondition, PropertyCondition, TimeOfDay
from services.notifier.journeys.timing import at_local

TriggerKind = Literal["segment", "event", "date", "profile", "items"]
DATE_GRACE = timedelta(days=1)  # a date occurrence read this late still enters (the wiring was down); later: stale
DATE_FIELDS = sorted(name for name, t in FIELD_TYPES.items() if getattr(t, "name", "") == "DATETIME")
VIEW_FIELDS = frozenset(f.name for f in SEGMENT_FIELDS)  # what a profile trigger may name its occurrences by
LIST_FIELDS = sorted(
    name for name, info in Profile.model_fields.items() if getattr(info.annotation, "__origin__", None) is list
)
# fields holding several dates (the warranty end of every item owned): a trigger takes the next one to come
SERIES_FIELDS = sorted(
    name for name, t in FIELD_TYPES.items() if getattr(getattr(t, "value_type", None), "name", "") == "DATETIME"
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SegmentTrigger(_Frozen):
    segment: Name
    change: Literal["entered", "exited"] = "entered"  # (not "on": YAML reads an unquoted on as true)


class EventTrigger(_Frozen):
    event: Annotated[tuple[str, ...], BeforeValidator(lambda v: (v,) if isinstance(v, str) else v)]
    where: PropertyCondition | None = None  # over the event's properties
    occurrence: str | None = None  # the property naming an occurrence (default: each event is one)

    @field_validator("event")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(known_event_type(v) for v in value)


def known_event_type(value: str) -> str:
    """``value`` if crmhub has events of that type (others are dead letters at ingest: they never come)."""
    if value not in EVENT_TYPES:
        raise ValueError(f"unknown event type {value!r} (docs/events.md lists them: {', '.join(EVENT_TYPES)})")
    return value


class DateTrigger(_Frozen):
    date: str  # a date field of the profile view, or traits.<name> holding an ISO date
    offset: Duration = timedelta()  # whole days, negative before the date
    at: TimeOfDay = time(9)  # local time of day in the customer's zone
    yearly: bool = False  # every year on the date's anniversary (a birthday)

    @field_validator("date")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value in DATE_FIELDS or value in SERIES_FIELDS or (value.startswith("traits.") and len(value) > 7):
            return value
        known = ", ".join([*DATE_FIELDS, *SERIES_FIELDS])
        raise ValueError(f"unknown date field {value!r} (one of {known}, or traits.<name>)")

    @property
    def repeats(self) -> bool:
        """It has another occurrence after one fires: yearly, or a field of several dates."""
        return self.yearly or self.date in SERIES_FIELDS

    @field_validator("offset")
    @classmethod
    def _whole_days(cls, value: timedelta) -> timedelta:
        if value % timedelta(days=1):
            raise ValueError("a date offset is whole days, like -30d or 90d")
        return value


class ProfileTrigger(_Frozen):
    """A state of the profile: every profile change for which ``profile`` holds is an occurrence, named by
    the value of the view field ``occurrence`` (a time field's value is also the occurrence's time)."""

    profile: ProfileCondition
    occurrence: str

    @field_validator("occurrence")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value not in VIEW_FIELDS:
            raise ValueError(f"unknown profile field {value!r} (docs/segments.md lists them)")
        return value


class ItemsTrigger(_Frozen):
    """Each item of the list ``items`` of the stored profile (``open_complaints``, ``open_cases``) for which
    ``where`` holds (a condition on the item's properties) is an occurrence, named by its property ``key``;
    ``at`` names the property holding its time (none: the time it was read)."""

    items: str
    key: str
    where: PropertyCondition | None = None
    at: str | None = None

    @field_validator("items")
    @classmethod
    def _known_list(cls, value: str) -> str:
        if value not in LIST_FIELDS:
            raise ValueError(f"unknown profile list {value!r} (one of {', '.join(LIST_FIELDS)})")
        return value


def _trigger_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    kinds = {"segment": "SegmentTrigger", "event": "EventTrigger", "date": "DateTrigger"}
    kinds |= {"profile": "ProfileTrigger", "items": "ItemsTrigger"}
    return next((kind for key, kind in kinds.items() if isinstance(value, dict) and key in value), None)


Trigger = Annotated[
    Annotated[SegmentTrigger, Tag("SegmentTrigger")]
    | Annotated[EventTrigger, Tag("EventTrigger")]
    | Annotated[DateTrigger, Tag("DateTrigger")]
    | Annotated[ProfileTrigger, Tag("ProfileTrigger")]
    | Annotated[ItemsTrigger, Tag("ItemsTrigger")],
    Discriminator(
        _trigger_kind,
        custom_error_type="trigger",
        custom_error_message="a trigger needs segment, event, date, profile or items",
    ),
]
AnyTrigger = SegmentTrigger | EventTrigger | DateTrigger | ProfileTrigger | ItemsTrigger
StateTrigger = ProfileTrigger | ItemsTrigger  # read from every profile change


@dataclass(frozen=True)
class Occurrence:
    """One thing that happened and may start a journey: ``name`` is the segment, the event type or the
    date field; ``data`` the change (``{"change": "entered"}``), the event's properties or the date."""

    kind: TriggerKind
    id: str
    name: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        """What templates and the enrollment keep of it (JSON-able when ``data`` is)."""
        return {"kind": self.kind, "id": self.id, "name": self.name, "at": self.at.isoformat(), "data": dict(self.data)}


def segment_change(segment: str, change: Literal["entered", "exited"], at: datetime) -> Occurrence:
    return Occurrence("segment", f"segment:{segment}:{change}:{at.isoformat()}", segment, at, {"change": change})


def event_occurrence(event_type: str, event_id: str, properties: Mapping[str, Any], at: datetime) -> Occurrence:
    return Occurrence("event", event_id, event_type, at, properties)


def fires(trigger: AnyTrigger, occ: Occurrence) -> bool:
    if isinstance(trigger, SegmentTrigger):
        return occ.kind == "segment" and occ.name == trigger.segment and occ.data.get("change") == trigger.change
    if isinstance(trigger, EventTrigger):
        where = trigger.where
        return occ.kind == "event" and occ.name in trigger.event and (where is None or where.holds(occ.data, occ.at))
    if isinstance(trigger, DateTrigger):
        return occ.kind == "date" and occ.name == trigger.date
    if isinstance(trigger, ProfileTrigger):  # the condition was checked on the profile it was read from
        return occ.kind == "profile" and occ.name == trigger.occurrence
    return occ.kind == "items" and occ.name == trigger.items


def occurrence_key(trigger: AnyTrigger, occ: Occurrence) -> str:
    """Which occurrence ``occ`` is: its id, or for an event trigger naming a property, that property's
    value (the complaint's message, however many events mention it)."""
    if isinstance(trigger, EventTrigger) and trigger.occurrence is not None:
        return f"{occ.name}:{trigger.occurrence}={occ.data.get(trigger.occurrence)}"
    return occ.id


def profile_occurrences(
    trigger: StateTrigger, view: Mapping[str, Any], record: Mapping[str, Any], now: datetime
) -> list[Occurrence]:
    """What a profile trigger finds in a profile: its segment ``view`` (the fields the condition and the
    occurrence read, at least) or its stored document ``record`` (JSON, as published)."""
    if isinstance(trigger, ProfileTrigger):
        value = view.get(trigger.occurrence)
        if value is None or not trigger.profile.holds(view, now):
            return []
        text = value.isoformat() if isinstance(value, datetime) else str(value)
        at = value if isinstance(value, datetime) else now
        return [Occurrence("profile", f"{trigger.occurrence}={text}", trigger.occurrence, at, {"value": text})]
    found = []
    for item in record.get(trigger.items) or ():
        if not isinstance(item, Mapping) or item.get(trigger.key) is None:
            continue
        if trigger.where is None or trigger.where.holds(item, now):
            when = _time(item.get(trigger.at)) if trigger.at else None
            key = f"{trigger.items}:{trigger.key}={item[trigger.key]}"
            found.append(Occurrence("items", key, trigger.items, when or now, dict(item)))
    return found


def still_current(
    trigger: AnyTrigger, occurrence: str, view: Mapping[str, Any], record: Mapping[str, Any], now: datetime
) -> bool:
    """Whether the profile (as ``view`` and ``record``) still has the occurrence a customer entered on."""
    if not isinstance(trigger, ProfileTrigger | ItemsTrigger):
        return True
    return any(occ.id == occurrence for occ in profile_occurrences(trigger, view, record, now))


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _dates_of(view: Mapping[str, Any], name: str, tz: ZoneInfo) -> list[date]:
    """The dates of a field of several dates (earliest first), else the one date of a field or trait."""
    raw = view.get(name)
    if isinstance(raw, tuple | list):
        return sorted({at.astimezone(tz).date() for at in raw if isinstance(at, datetime)})
    day = _date_of(view, name, tz)
    return [] if day is None else [day]


def _date_of(view: Mapping[str, Any], name: str, tz: ZoneInfo) -> date | None:
    raw = (view.get("traits") or {}).get(name.removeprefix("traits.")) if name.startswith("traits.") else view.get(name)
    if isinstance(raw, datetime):
        return raw.astimezone(tz).date()
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            return None
    return raw if isinstance(raw, date) else None


def _anniversary(day: date, year: int) -> date:
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a year without one
        return date(year, 2, 28)


def is_stale(occ: Occurrence, now: datetime) -> bool:
    """A date occurrence past by more than :data:`DATE_GRACE`: not an occasion to enter on (set in the
    past, or read too late)."""
    return now - occ.at > DATE_GRACE


def date_occurrence(trigger: DateTrigger, view: Mapping[str, Any], tz: ZoneInfo, now: datetime) -> Occurrence | None:
    """The date occurrence the profile ``view`` calls for: once (the date plus the offset), yearly the
    first anniversary not past by more than :data:`DATE_GRACE`, or of a field of several dates the first
    not past by more than that; None without a date."""
    bases = _dates_of(view, trigger.date, tz)
    if not bases:
        return None
    days = [base + trigger.offset for base in bases]
    day = next((d for d in days if at_local(d, trigger.at, tz) > now - DATE_GRACE), days[-1])
    if trigger.yearly:  # the anniversaries of the date plus the offset, from that day on (never before it)
        year = now.astimezone(tz).year
        years = (_anniversary(day, y) for y in (year - 1, year, year + 1) if y >= day.year)
        day = next((d for d in years if at_local(d, trigger.at, tz) > now - DATE_GRACE), day)
    at = at_local(day, trigger.at, tz)
    return Occurrence("date", f"date:{trigger.date}:{day.isoformat()}", trigger.date, at, {"date": day.isoformat()})
