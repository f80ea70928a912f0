"""The engine's effects in the shapes the rest of crmhub takes: a message as an :class:`Alert` for the
delivery outbox, a profile update as an ``identify`` event for the profile service, and counters and a
customer's history for the journeys' read model (``schemas/readmodels/journeys.py``). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson

from schemas.events import validate_event
from schemas.outputs import Alert, AlertKind, Channel
from services.notifier.journeys.effects import Converted, Count, Effect, Exited, Send, UpdateProfile

SUMMARY_CHARS = 300
Tally = dict[tuple[str, str, str], Any]  # (journey, step, counter) -> amount


@dataclass
class Held:
    """A batch of input records' effects, carried out together once it has been handled: its messages,
    profile updates (``identify`` events, per profile id), counters and customers' histories."""

    alerts: list[Alert] = field(default_factory=list)
    updates: list[tuple[str, bytes]] = field(default_factory=list)
    counts: Tally = field(default_factory=dict)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.updates or self.counts or self.histories)

    def note(self, profile_id: str, effects: Sequence[Effect], now: datetime) -> None:
        """The counters and history entries of one engine call's effects."""
        for counter, amount in tally(effects).items():
            self.counts[counter] = self.counts.get(counter, 0) + amount
        if history := [entry for effect in effects if (entry := history_entry(effect, now))]:
            self.histories.setdefault(profile_id, []).extend(history)


def to_alert(send: Send, now: datetime) -> Alert:
    """A journey's message: its id is the engine's (one per journey, version, profile, occurrence, step);
    its details are the step's, and which journey and step sent it. One sent as an ``alert`` is routed
    like the notifier's other alerts (no channel)."""
    return Alert(
        alert_id=send.message_id,
        kind=cast(AlertKind, send.kind),
        profile_id=send.profile_id,
        raised_at=now,
        summary=send.rendered[:SUMMARY_CHARS],
        details={**send.details, "journey": send.journey_id, "step": send.step, "message": send.rendered},
        internal=send.internal,
        channel=None if send.channel == "alert" else cast(Channel, send.channel),
    )


def update_event(update: UpdateProfile, view: Mapping[str, Any], now: datetime) -> bytes:
    """The update as an ``identify`` from crmhub itself, the update's id as its event id (folded once). A
    tag joins the profile's ``traits.tags``."""
    if update.tag is not None:
        tags = (view.get("traits") or {}).get("tags")
        kept = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
        traits: dict[str, Any] = {"tags": sorted({*kept, update.tag})}
    else:
        traits = {str(update.trait): update.value}
    event = validate_event(
        {
            "event_id": update.update_id,
            "source": "crm",
            "type": "identify",
            "occurred_at": now,
            "profile_id": update.profile_id,
            "traits": traits,
        }
    )
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True))


def history_entry(effect: Effect, now: datetime) -> dict[str, Any] | None:
    """What a customer's journey history keeps of an effect (None: nothing)."""
    base = {"at": now.isoformat(), "journey": getattr(effect, "journey_id", None)}
    match effect:
        case Send():
            return {**base, "what": "sent", "step": effect.step, "id": effect.message_id}
        case Exited():
            return {**base, "what": "exited", "reason": effect.reason}
        case Converted():
            return {**base, "what": "converted", "step": effect.step, "revenue": str(effect.revenue)}
    return None


def tally(effects: Sequence[Effect]) -> Tally:
    counts: Tally = {}
    for effect in effects:
        if isinstance(effect, Count):
            key = (effect.journey_id, effect.step, effect.counter)
            counts[key] = counts.get(key, 0) + effect.amount
    return counts
