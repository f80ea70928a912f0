"""Which journeys an input concerns, looked up once per input rather than by asking every journey: the
journeys an event type or a segment change triggers, those an event type may convert or end (goals and
exit events), the date-triggered ones and the ones a profile change triggers (with a reader of the few
fields of a change their conditions read). Built once from the journeys that run. Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmhub.core.conditions.fields import doc_view_reader
from services.notifier.journeys.definition import Journey
from services.notifier.journeys.triggers import (
    DateTrigger,
    EventTrigger,
    ItemsTrigger,
    Occurrence,
    ProfileTrigger,
    SegmentTrigger,
)


@dataclass(frozen=True)
class JourneyIndex:
    journeys: Mapping[str, Journey]
    events: Mapping[str, tuple[Journey, ...]]  # event type -> the journeys it triggers
    watchers: Mapping[str, tuple[Journey, ...]]  # event type -> the journeys it may convert or end
    segments: Mapping[tuple[str, str], tuple[Journey, ...]]  # (segment, change) -> the journeys it triggers
    dated: tuple[Journey, ...]
    profiled: tuple[Journey, ...] = ()  # profile and items triggers: read from every profile change
    # the segment view of a profile change, of the fields the profile triggers read only
    read_view: Callable[[Mapping[str, Any]], dict[str, Any]] = field(default=lambda change: {}, compare=False)
    # and of the fields the date triggers read (and the time zone): every change is read for its dates
    date_view: Callable[[Mapping[str, Any]], dict[str, Any]] = field(default=lambda change: {}, compare=False)

    @classmethod
    def of(cls, journeys: Iterable[Journey]) -> JourneyIndex:
        running = [j for j in journeys if j.status == "active"]
        events: dict[str, list[Journey]] = {}
        watchers: dict[str, list[Journey]] = {}
        segments: dict[tuple[str, str], list[Journey]] = {}
        for j in running:
            trigger = j.trigger
            if isinstance(trigger, EventTrigger):
                for kind in trigger.event:
                    events.setdefault(kind, []).append(j)
            elif isinstance(trigger, SegmentTrigger):
                segments.setdefault((trigger.segment, trigger.change), []).append(j)
            for kind in {*(e.event for e in j.exit.events), *([j.goal.event] if j.goal else [])}:
                watchers.setdefault(kind, []).append(j)
        dated = tuple(j for j in running if isinstance(j.trigger, DateTrigger))
        profiled = tuple(j for j in running if isinstance(j.trigger, ProfileTrigger | ItemsTrigger))
        return cls(
            {j.id: j for j in journeys},
            _frozen(events),
            _frozen(watchers),
            _frozen(segments),
            dated,
            profiled,
            _view_of({n for j in profiled if isinstance(t := j.trigger, ProfileTrigger) for n in _profile_fields(t)}),
            _view_of({"timezone", *(_date_field(j.trigger.date) for j in dated if isinstance(j.trigger, DateTrigger))}),
        )

    def signature(self) -> list[tuple[str, int, str]]:
        """(id, version, status) of every journey: what tells a changed set of journeys."""
        return sorted((j.id, j.version, j.status) for j in self.journeys.values())

    def reads_events(self) -> bool:
        return bool(self.events or self.watchers)

    def triggered_by(self, event_type: str) -> tuple[Journey, ...]:
        return self.events.get(event_type, ())

    def watching(self, event_type: str) -> tuple[Journey, ...]:
        return self.watchers.get(event_type, ())

    def by_segment(self, segment: str, change: str) -> tuple[Journey, ...]:
        return self.segments.get((segment, change), ())


def _profile_fields(trigger: ProfileTrigger) -> set[str]:
    return {*trigger.profile.fields, trigger.occurrence}


def _date_field(name: str) -> str:
    """The segment field a date trigger's date is read from (a trait's: ``traits``)."""
    return "traits" if name.startswith("traits.") else name


def _view_of(names: set[str]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A change is read for the fields its triggers need (none: nothing read)."""
    return doc_view_reader(names) if names else lambda change: {}


def _frozen(found: Mapping[Any, list[Journey]]) -> dict[Any, tuple[Journey, ...]]:
    return {key: tuple(journeys) for key, journeys in found.items()}


def event_data(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What a trigger's condition and a template read of an event: its properties (an identify's traits)."""
    data = doc.get("properties") or doc.get("traits") or {}
    return dict(data) if isinstance(data, Mapping) else {}


def event_occurrence_of(doc: Mapping[str, Any]) -> Occurrence:
    """An event of ``crm.events.v1`` (its JSON document) as an occurrence."""
    at = datetime.fromisoformat(doc["occurred_at"])
    return Occurrence("event", str(doc["event_id"]), str(doc["type"]), at, event_data(doc))
