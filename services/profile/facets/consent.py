"""The consent facet: per channel and purpose, the latest decision by event time (a withdrawal wins a tie).

Decisions come from ``consent.granted`` / ``consent.withdrawn``, and from the e-mail lifecycle: an
``Unsubscribed`` or an ``Email Marked as Spam`` withdraws e-mail marketing consent by the same rule."""

from __future__ import annotations

from schemas.events import ConsentGranted, ConsentWithdrawn, EmailMarkedAsSpam, Unsubscribed
from schemas.profile import ConsentState, Profile
from services.profile.facets import Facet
from services.profile.policy import FoldRules

Decisions = dict[str, dict[str, ConsentState]]


def fold_consent(p: Profile, e: ConsentGranted | ConsentWithdrawn, rules: FoldRules) -> None:
    props = e.properties
    decision = ConsentState(
        granted=isinstance(e, ConsentGranted), at=e.occurred_at, source=e.source, method=props.method
    )
    decide(p, props.channel, props.purpose, decision)


def fold_opt_out(p: Profile, e: Unsubscribed | EmailMarkedAsSpam, rules: FoldRules) -> None:
    """The customer unsubscribed from, or reported as spam, a marketing e-mail: e-mail marketing withdrawn."""
    method = "unsubscribed" if isinstance(e, Unsubscribed) else "marked as spam"
    decide(p, "email", "marketing", ConsentState(granted=False, at=e.occurred_at, source=e.source, method=method))


def decide(p: Profile, channel: str, purpose: str, decision: ConsentState) -> None:
    """Keep ``decision`` for the channel and purpose if it is later than the known one (or withdraws on a tie)."""
    purposes = p.consent.setdefault(channel, {})
    if _wins(decision, purposes.get(purpose)):
        purposes[purpose] = decision


def _wins(theirs: ConsentState, ours: ConsentState | None) -> bool:
    return ours is None or (theirs.at, not theirs.granted) > (ours.at, not ours.granted)


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Per channel and purpose the later decision; on a tie a withdrawal."""
    decisions: Decisions = {channel: dict(purposes) for channel, purposes in survivor.consent.items()}
    for channel, purposes in absorbed.consent.items():
        mine = decisions.setdefault(channel, {})
        for purpose, theirs in purposes.items():
            if _wins(theirs, mine.get(purpose)):
                mine[purpose] = theirs
    merged.consent = decisions


FACET = Facet(
    "consent",
    merge,
    folds={
        ConsentGranted: fold_consent,
        ConsentWithdrawn: fold_consent,
        Unsubscribed: fold_opt_out,
        EmailMarkedAsSpam: fold_opt_out,
    },
)
