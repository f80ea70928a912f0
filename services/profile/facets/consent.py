"""The consent facet: per channel and purpose, the latest decision by event time (a withdrawal wins a tie)."""

from __future__ import annotations

from schemas.events import ConsentGranted, ConsentWithdrawn
from schemas.profile import ConsentState, Profile
from services.profile.facets import Facet
from services.profile.policy import FoldRules

Decisions = dict[str, dict[str, ConsentState]]


def fold_consent(p: Profile, e: ConsentGranted | ConsentWithdrawn, rules: FoldRules) -> None:
    props, granted = e.properties, isinstance(e, ConsentGranted)
    purposes = p.consent.setdefault(props.channel, {})
    known = purposes.get(props.purpose)
    if known is None or e.occurred_at > known.at or (e.occurred_at == known.at and not granted):
        purposes[props.purpose] = ConsentState(granted=granted, at=e.occurred_at, source=e.source, method=props.method)


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Per channel and purpose the later decision; on a tie a withdrawal."""
    decisions: Decisions = {channel: dict(purposes) for channel, purposes in survivor.consent.items()}
    for channel, purposes in absorbed.consent.items():
        mine = decisions.setdefault(channel, {})
        for purpose, theirs in purposes.items():
            ours = mine.get(purpose)
            if ours is None or (theirs.at, not theirs.granted) > (ours.at, not ours.granted):
                mine[purpose] = theirs
    merged.consent = decisions


FACET = Facet("consent", merge, folds={ConsentGranted: fold_consent, ConsentWithdrawn: fold_consent})
