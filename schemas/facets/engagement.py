"""Marketing engagement: how the customer responds to e-mail and push campaigns (Segment's e-mail and push
lifecycle events), and the addresses that bounced. Consent withdrawn by an unsubscribe or a spam report
is the consent facet's."""

from __future__ import annotations

from typing import TypedDict

from pydantic import AwareDatetime, BaseModel, Field

from schemas.facets.base import SegmentField, computed, stored


class EngagementCounts(TypedDict):
    """Events of each kind: ``engagement.email_opened >= 3`` in a segment."""

    email_delivered: int
    email_opened: int
    email_clicked: int
    email_bounced: int
    email_spam: int
    unsubscribed: int
    push_received: int
    push_tapped: int


ENGAGEMENT_KINDS = tuple(EngagementCounts.__annotations__)


class EngagementFacet(BaseModel):
    engagement_counts: dict[str, int] = Field(
        default_factory=dict, description="Events by kind (ENGAGEMENT_KINDS): email_opened, push_tapped …"
    )
    last_email_opened_at: AwareDatetime | None = None
    last_email_clicked_at: AwareDatetime | None = None
    last_push_tapped_at: AwareDatetime | None = None
    last_engaged_at: AwareDatetime | None = Field(None, description="The latest open, click or tap.")
    engaged_campaigns: list[str] = Field(
        default_factory=list, description="Campaign ids of the latest opens, clicks and taps, newest last."
    )
    bounced_emails: list[str] = Field(default_factory=list, description="Addresses that bounced, latest last.")


@computed("engagement_counts")
def engagement(p: EngagementFacet) -> EngagementCounts:
    return {kind: p.engagement_counts.get(kind, 0) for kind in ENGAGEMENT_KINDS}  # type: ignore[return-value]


@computed("bounced_emails")
def email_bounced(p: EngagementFacet) -> bool:
    """An address of the customer's bounced (see ``bounced_emails``)."""
    return bool(p.bounced_emails)


SEGMENT_FIELDS: list[SegmentField] = [engagement, email_bounced]
SEGMENT_FIELDS += stored(
    EngagementFacet, "last_email_opened_at", "last_email_clicked_at", "last_push_tapped_at", "last_engaged_at"
)
