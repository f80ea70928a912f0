"""The engagement facet: Segment's e-mail and push lifecycle events counted by kind, the latest open,
click and tap by event time, the campaigns engaged with and the addresses that bounced.

An unsubscribe or a spam report also withdraws e-mail marketing consent: that is folded by the consent
facet (``services.profile.facets.consent``), which owns consent."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from schemas.events import (
    EmailBounced,
    EmailDelivered,
    EmailEvent,
    EmailLinkClicked,
    EmailMarkedAsSpam,
    EmailOpened,
    Envelope,
    PushEvent,
    PushNotificationReceived,
    PushNotificationTapped,
    Unsubscribed,
)
from schemas.profile import Profile
from services.profile.facets import Facet, Fold
from services.profile.policy import FoldRules

MAX_CAMPAIGNS = 20
MAX_BOUNCED_EMAILS = 10
KIND_OF: dict[type[Envelope], str] = {
    EmailDelivered: "email_delivered",
    EmailOpened: "email_opened",
    EmailLinkClicked: "email_clicked",
    EmailBounced: "email_bounced",
    EmailMarkedAsSpam: "email_spam",
    Unsubscribed: "unsubscribed",
    PushNotificationReceived: "push_received",
    PushNotificationTapped: "push_tapped",
}
LAST_AT = {"email_opened": "last_email_opened_at", "email_clicked": "last_email_clicked_at"}
LAST_AT |= {"push_tapped": "last_push_tapped_at"}  # kinds that are engagement: each keeps its latest time


def fold_engagement(p: Profile, e: EmailEvent | PushEvent, rules: FoldRules) -> None:
    kind = KIND_OF[type(e)]
    p.engagement_counts[kind] = p.engagement_counts.get(kind, 0) + 1
    if kind in LAST_AT:
        _later(p, LAST_AT[kind], e.occurred_at)
        _later(p, "last_engaged_at", e.occurred_at)
        if e.properties.campaign_id:
            p.engaged_campaigns = _latest([*p.engaged_campaigns, e.properties.campaign_id], MAX_CAMPAIGNS)
    if kind == "email_bounced" and e.email:
        p.bounced_emails = _latest([*p.bounced_emails, e.email], MAX_BOUNCED_EMAILS)


def _later(p: Profile, name: str, at: datetime) -> None:
    known = getattr(p, name)
    if known is None or at > known:
        setattr(p, name, at)


def _latest(values: list[str], limit: int) -> list[str]:
    """Each value once, at its latest place, the last ``limit`` of them."""
    return list(reversed(dict.fromkeys(reversed(values))))[-limit:]


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Counts summed, the later times, campaigns and bounced addresses united (the survivor's latest)."""
    merged.engagement_counts = dict(Counter(survivor.engagement_counts) + Counter(absorbed.engagement_counts))
    for name in (*LAST_AT.values(), "last_engaged_at"):
        times = [t for t in (getattr(survivor, name), getattr(absorbed, name)) if t is not None]
        setattr(merged, name, max(times, default=None))
    merged.engaged_campaigns = _latest([*absorbed.engaged_campaigns, *survivor.engaged_campaigns], MAX_CAMPAIGNS)
    merged.bounced_emails = _latest([*absorbed.bounced_emails, *survivor.bounced_emails], MAX_BOUNCED_EMAILS)


FOLDS: dict[type[Envelope], Fold] = {model: fold_engagement for model in KIND_OF}
FACET = Facet("engagement", merge, folds=FOLDS)
