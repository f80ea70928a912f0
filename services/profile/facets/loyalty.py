"""The loyalty facet: points earned by orders (net of refunds and cancellations, kept per order by the
orders facet through :func:`earn`), points redeemed at the till (:func:`redeem`), the balance and the
tier. The RFM scores beside it are set by the periodic refresh (``services.profile.rfm``), not by events."""

from __future__ import annotations

from schemas.profile import Loyalty, Profile
from services.profile.facets import Facet
from services.profile.policy import FoldRules


def earn(p: Profile, rules: FoldRules, points: int) -> None:
    """Add (or, negative, take back) earned points; the balance and the tier follow."""
    _set(p, rules, p.loyalty.earned + points, p.loyalty.redeemed)


def redeem(p: Profile, rules: FoldRules, points: int) -> None:
    _set(p, rules, p.loyalty.earned, p.loyalty.redeemed + points)


def _set(p: Profile, rules: FoldRules, earned: int, redeemed: int) -> None:
    p.loyalty = Loyalty(earned=earned, redeemed=redeemed, balance=earned - redeemed, tier=rules.tier_for(earned))


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Points summed (the orders facet then takes out those of an order both counted); the RFM scores
    are the survivor's (else the absorbed's) until the next refresh."""
    earned = survivor.loyalty.earned + absorbed.loyalty.earned
    _set(merged, rules, earned, survivor.loyalty.redeemed + absorbed.loyalty.redeemed)
    merged.rfm = survivor.rfm or absorbed.rfm


FACET = Facet("loyalty", merge)
