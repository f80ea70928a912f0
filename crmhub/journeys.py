"""``crmhub journeys list``, ``show`` and ``test``: the journeys in force (the journeys file's and those
made through the API) with their counts,
and a dry run of a journey against a stored profile (nothing is sent, nothing is written)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from crmhub.core.conditions.fields import source_view
from crmhub.core.errors import ConfigError
from crmhub.core.settings import Settings
from crmhub.segments import Hub, print_rows
from schemas.readmodels.journeys import step_counts
from schemas.readmodels.segments import segments_of
from services.notifier.journeys.catalog import current_journeys
from services.notifier.journeys.definition import Journey
from services.notifier.journeys.effects import Count, Effect, Send, UpdateProfile
from services.notifier.journeys.engine import on_due, on_trigger
from services.notifier.journeys.gates import Customer
from services.notifier.journeys.store import JourneyStore
from services.notifier.journeys.triggers import (
    DateTrigger,
    EventTrigger,
    ItemsTrigger,
    Occurrence,
    ProfileTrigger,
    date_occurrence,
    event_occurrence,
    profile_occurrences,
    segment_change,
)

MAX_CALLS = 100  # a dry run follows the waits of at most this many calls


def in_force(hub: Hub) -> list[Journey]:
    """The journeys file's and those made through the API."""
    return current_journeys(hub.settings, JourneyStore(hub.engine))[0]


def find(hub: Hub, journey_id: str) -> Journey:
    found = next((j for j in in_force(hub) if j.id == journey_id), None)
    if found is None:
        raise ConfigError(f"no journey {journey_id!r}; `crmhub journeys list` shows them")
    return found


def print_list(settings: Settings) -> None:
    hub = Hub(settings)
    hub.check_redis()
    journeys = in_force(hub)
    table = Table(title=f"{len(journeys)} journeys ({settings.journeys_file or 'shipped'} file and API)")
    for column in ("id", "status", "trigger", "entered", "sent", "converted"):
        table.add_column(column, overflow="fold")
    for j in journeys:
        counts = step_counts(hub.redis, j.id)
        total = {c: sum(step.get(c, 0) for step in counts.values()) for c in ("entered", "sent", "converted")}
        trigger = j.trigger.model_dump(mode="json", exclude_defaults=True)
        table.add_row(j.id, j.status, str(trigger), *(str(total[c]) for c in ("entered", "sent", "converted")))
    Console().print(table)


def print_journey(settings: Settings, journey_id: str) -> None:
    hub = Hub(settings)
    hub.check_redis()
    journey = find(hub, journey_id)
    counts = step_counts(hub.redis, journey_id)
    rows: list[tuple[str, Any]] = [("name", journey.name), ("version", journey.version), ("status", journey.status)]
    rows.append(("trigger", journey.trigger.model_dump(mode="json", exclude_defaults=True)))
    for step in journey.steps:
        figures = ", ".join(f"{k} {v}" for k, v in sorted(counts.get(step.name, {}).items())) or "-"
        rows.append((f"step {step.name}", figures))
    print_rows(f"journey {journey_id}", rows)


def occurrence(journey: Journey, customer: Customer, now: datetime) -> Occurrence:
    """The occurrence a dry run starts from: the trigger's segment change, its first event type (with no
    properties), the profile's next date, or what a profile trigger finds in the profile (the first)."""
    trigger = journey.trigger
    if isinstance(trigger, EventTrigger):
        return event_occurrence(trigger.event[0], "dry-run", {}, now)
    if isinstance(trigger, DateTrigger):
        occ = date_occurrence(trigger, customer.view, customer.zone(journey.policy), now)
        if occ is None:
            raise ConfigError(f"the profile has no {trigger.date}: the journey would never start for it")
        return occ
    if isinstance(trigger, ProfileTrigger | ItemsTrigger):
        found = profile_occurrences(trigger, customer.view, customer.record, now)
        if not found:
            raise ConfigError("the profile has nothing this journey's trigger looks for: it would not start")
        return found[0]
    return segment_change(trigger.segment, trigger.change, now)


def dry_run(journey: Journey, customer: Customer, now: datetime) -> list[tuple[datetime, Effect]]:
    """What the journey would do for the customer as they are now, waits passed at once."""
    active = journey.model_copy(update={"status": "active"})
    occ = occurrence(active, customer, now)
    at = max(now, occ.at)
    enrollment, effects = on_trigger(active, None, occ, customer, at)
    done = [(at, e) for e in effects]
    for _ in range(MAX_CALLS):
        if enrollment is None or not enrollment.active or enrollment.due_at is None:
            break
        at = enrollment.due_at
        enrollment, effects = on_due(active, enrollment, customer, at)
        done += [(at, e) for e in effects]
    return done


def describe(effect: Effect) -> str | None:
    if isinstance(effect, Send):
        return f"send {effect.channel} ({effect.kind}{', internal' if effect.internal else ''}): {effect.rendered}"
    if isinstance(effect, UpdateProfile):
        return f"update {'tag ' + str(effect.tag) if effect.tag else f'trait {effect.trait} = {effect.value!r}'}"
    if isinstance(effect, Count) and effect.counter not in ("sent", "updated", "waiting"):
        return f"step {effect.step}: {effect.counter}"
    if isinstance(effect, Count) and effect.counter == "waiting" and effect.amount > 0:
        return f"step {effect.step}: waits"
    return None


def print_test(settings: Settings, journey_id: str, profile_id: str) -> None:
    hub = Hub(settings)
    journey = find(hub, journey_id)
    profile = hub.profile(profile_id)
    segments = frozenset(segments_of(hub.redis, profile.profile_id))
    customer = Customer(source_view(profile), segments, record=profile.model_dump(mode="json"))
    now = datetime.now(UTC)
    rows = [(f"{'+' + str(at - now).split('.')[0] if at - now > timedelta(0) else 'now'}", text)
            for at, effect in dry_run(journey, customer, now) if (text := describe(effect))]  # fmt: skip
    print_rows(f"journey {journey_id} for {profile.profile_id} (a dry run: nothing sent)", rows or [("", "no entry")])
