"""Association members: the membership (status, plan, fee, expiry, member since) and the association's
events the member registered for and attended, with an engagement score.

Tenure is not a field: a field is a function of the profile alone, and tenure grows with the clock, so it
is the time function ``years_since(member_since)`` (as the age is ``years_since(birthday)``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField, computed

Status = Literal["active", "lapsed", "cancelled"]
ENGAGEMENT_WINDOW = timedelta(days=365)


class Membership(BaseModel):
    """The membership as its events tell it; each part is the latest event's for that part (event time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Status
    status_at: AwareDatetime = Field(description="Event time of the latest start, renewal, lapse or cancellation.")
    plan: str | None = None
    fee: Decimal | None = None
    currency: str | None = None
    expires_at: AwareDatetime | None = Field(None, description="The end of the latest term (None: no end).")
    term_at: AwareDatetime | None = Field(None, description="Event time of the latest start or renewal.")
    since: AwareDatetime | None = Field(None, description="The earliest start or renewal: member since.")
    membership_id: str | None = None


class MemberEvent(BaseModel):
    """One of the association's events, as far as this member is concerned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    name: str | None = None
    starts_at: AwareDatetime | None = None
    registered_at: AwareDatetime | None = Field(None, description="The latest registration.")
    cancelled_at: AwareDatetime | None = Field(None, description="The latest cancellation of the registration.")
    attended_at: AwareDatetime | None = None
    seen_at: AwareDatetime = Field(description="The latest event about it: name and start are that one's.")

    @property
    def registered(self) -> bool:
        """Registered and not cancelled since (a cancellation wins a tie); attending counts as registered."""
        if self.attended_at is not None:
            return True
        return self.registered_at is not None and (self.cancelled_at is None or self.cancelled_at < self.registered_at)

    @property
    def activity(self) -> tuple[datetime, ...]:
        """When the member interacted with it: registered (kept), attended."""
        kept = self.registered_at if self.registered else None
        return tuple(at for at in (kept, self.attended_at) if at is not None)


class MembersFacet(BaseModel):
    membership: Membership | None = None
    member_events: list[MemberEvent] = Field(
        default_factory=list, description="The association's events, by start (the latest MAX_MEMBER_EVENTS)."
    )


@computed("membership")
def membership_status(p: MembersFacet) -> str:
    """active, lapsed, cancelled, or none (never a member)."""
    return p.membership.status if p.membership else "none"


@computed("membership")
def membership_plan(p: MembersFacet) -> str | None:
    return p.membership.plan if p.membership else None


@computed("membership")
def membership_fee(p: MembersFacet) -> Decimal | None:
    return p.membership.fee if p.membership else None


@computed("membership")
def membership_currency(p: MembersFacet) -> str | None:
    return p.membership.currency if p.membership else None


@computed("membership")
def membership_expires_at(p: MembersFacet) -> datetime | None:
    """The end of the current (or last) term: ``days_since(membership_expires_at) >= -30`` is due in 30 days."""
    return p.membership.expires_at if p.membership else None


@computed("membership")
def member_since(p: MembersFacet) -> datetime | None:
    """``years_since(member_since)`` is the tenure in whole years, advancing on each anniversary."""
    return p.membership.since if p.membership else None


@computed("member_events")
def registered_events(p: MembersFacet) -> tuple[str, ...]:
    """The events registered for (attended ones too, cancelled ones not): ``"agm-2027" in registered_events``."""
    return tuple(e.event_id for e in p.member_events if e.registered)


@computed("member_events")
def events_attended(p: MembersFacet) -> int:
    return sum(1 for e in p.member_events if e.attended_at is not None)


@computed("member_events")
def last_event_attended_at(p: MembersFacet) -> datetime | None:
    return max((e.attended_at for e in p.member_events if e.attended_at is not None), default=None)


@computed("member_events")
def registered_event_starts(p: MembersFacet) -> tuple[datetime, ...]:
    """The starts of the events registered for and not attended (yet), earliest first: a date trigger on it
    fires for the next registered event."""
    starts = {e.starts_at for e in p.member_events if e.registered and e.attended_at is None and e.starts_at}
    return tuple(sorted(at for at in starts if at is not None))


@computed("member_events")
def latest_registered_event_at(p: MembersFacet) -> datetime | None:
    """The start of the last event registered for: ``days_since(latest_registered_event_at) < 0`` is a
    registration to come."""
    return max((e.starts_at for e in p.member_events if e.registered and e.starts_at), default=None)


@computed("member_events")
def member_engagement(p: MembersFacet) -> int:
    """One point per registration kept and one per event attended (a registered event attended: 2), counted
    over the 365 days up to the member's latest such interaction. Pure: the window ends at the member's
    latest interaction, not now (see docs/members.md), so pair it with ``days_since(last_event_attended_at)``."""
    times = [at for e in p.member_events for at in e.activity]
    if not times:
        return 0
    start = max(times) - ENGAGEMENT_WINDOW
    return sum(1 for at in times if at > start)


SEGMENT_FIELDS: list[SegmentField] = [
    membership_status,
    membership_plan,
    membership_fee,
    membership_currency,
    membership_expires_at,
    member_since,
    registered_events,
    events_attended,
    last_event_attended_at,
    registered_event_starts,
    latest_registered_event_at,
    member_engagement,
]
