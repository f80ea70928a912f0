"""The marketing-context facet: what the ``context`` of tracking calls tells about how the person comes.

Any event with a ``context`` feeds it. The first touch is the earliest campaign by event time, the last
touch the latest; referrer, device type, locale, time zone and country each keep their latest value:
an event newer than the context's ``updated_at`` overwrites the values it carries, an older one only
fills the values still missing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.events import Campaign, Event, EventContext
from schemas.profile import MarketingContext, Profile, Touch
from services.profile.facets import Facet
from services.profile.policy import FoldRules

_LATEST_FIELDS = ("referrer", "device_type", "locale", "timezone", "country")
_NEVER = datetime.min.replace(tzinfo=UTC)


def fold_context(p: Profile, e: Event, rules: FoldRules) -> None:
    if e.context is not None:
        p.context = with_context(p.context, e.context, e.occurred_at)


def with_context(known: MarketingContext, context: EventContext, at: datetime) -> MarketingContext:
    newer = known.updated_at is None or at >= known.updated_at
    update: dict[str, object] = {}
    for name in _LATEST_FIELDS:
        value = getattr(context, name)
        if value is not None and (newer or getattr(known, name) is None):
            update[name] = value
    if context.campaign is not None:
        touch = _touch(context.campaign, at)
        if known.first_touch is None or at < known.first_touch.at:
            update["first_touch"] = touch
        if known.last_touch is None or at >= known.last_touch.at:
            update["last_touch"] = touch
    if newer:
        update["updated_at"] = at
    return known.model_copy(update=update)


def _touch(campaign: Campaign, at: datetime) -> Touch:
    return Touch(source=campaign.source, medium=campaign.medium, campaign=campaign.name, at=at)


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    merged.context = merge_context(survivor.context, absorbed.context)


def merge_context(survivor: MarketingContext, absorbed: MarketingContext) -> MarketingContext:
    """The newer context's values win, the other fills what it lacks; the earlier first touch and the
    later last touch (the survivor's on a tie)."""
    newer, older = (absorbed, survivor) if _time(absorbed) > _time(survivor) else (survivor, absorbed)
    values = {name: getattr(newer, name) or getattr(older, name) for name in _LATEST_FIELDS}
    firsts = [t for t in (survivor.first_touch, absorbed.first_touch) if t is not None]
    lasts = [t for t in (survivor.last_touch, absorbed.last_touch) if t is not None]
    return MarketingContext(
        **values,
        first_touch=min(firsts, key=lambda t: t.at, default=None),
        last_touch=max(lasts, key=lambda t: t.at, default=None),
        updated_at=newer.updated_at or older.updated_at,
    )


def _time(context: MarketingContext) -> datetime:
    return context.updated_at or _NEVER


FACET = Facet("context", merge, every=fold_context)
