"""Marketing context: what the ``context`` of tracking calls tells about how the person comes (first and
last campaign, referrer, device type, locale, time zone, country). The IP itself is never kept."""

from __future__ import annotations

from operator import attrgetter

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField


class Touch(BaseModel):
    """A visit's campaign (UTM source, medium and campaign name) and when it was seen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    at: AwareDatetime


class MarketingContext(BaseModel):
    """Kept from the ``context`` of tracking calls (``services.profile.facets.context``): the first and the
    last campaign, and the latest referrer, device type, locale, time zone and country of the IP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_touch: Touch | None = Field(None, description="The earliest campaign by event time.")
    last_touch: Touch | None = Field(None, description="The latest campaign by event time.")
    referrer: str | None = None
    device_type: str | None = None
    locale: str | None = None
    timezone: str | None = None
    country: str | None = Field(None, description="Of the last IP, as the sender resolved it (no IP is kept).")
    updated_at: AwareDatetime | None = Field(None, description="Event time of the latest context folded in.")


class ContextFacet(BaseModel):
    context: MarketingContext = Field(default_factory=MarketingContext)


def _touch_field(touch: str, part: str) -> SegmentField:
    def get(p: ContextFacet) -> str | None:
        t: Touch | None = getattr(p.context, touch)
        return getattr(t, part) if t is not None else None

    return SegmentField(f"{touch}_{part}", str | None, ("context",), get)


def _latest_field(name: str, exposed: str) -> SegmentField:
    annotation = MarketingContext.model_fields[name].annotation
    return SegmentField(exposed, annotation, ("context",), attrgetter(f"context.{name}"))


SEGMENT_FIELDS = [
    *(_touch_field(t, part) for t in ("first_touch", "last_touch") for part in ("source", "medium", "campaign")),
    *(_latest_field(n, n) for n in ("referrer", "device_type", "locale", "timezone")),
    _latest_field("country", "ip_country"),
]
