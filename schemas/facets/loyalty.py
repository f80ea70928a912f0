"""Loyalty: points earned by orders and redeemed at the till, and the tier they reach; and the RFM scores
the periodic refresh computes against the whole customer base."""

from __future__ import annotations

from typing import TypedDict

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import computed


class Loyalty(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    earned: int = Field(0, description="Points earned by orders, net of what refunds and cancellations took back.")
    redeemed: int = Field(0, description="Points paid with at the till (tenders of method loyalty_points).")
    balance: int = Field(0, description="earned - redeemed.")
    tier: str | None = Field(None, description="The highest tier whose threshold ``earned`` reaches.")


class RFM(BaseModel):
    """Recency, frequency and monetary quintile scores (1 low … 5 best) against the customer base, as the
    last periodic refresh computed them (``services.profile.rfm``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recency: int = Field(ge=1, le=5)
    frequency: int = Field(ge=1, le=5)
    monetary: int = Field(ge=1, le=5)
    score: str = Field(description='The three digits, e.g. "545".')
    computed_at: AwareDatetime


class LoyaltyFacet(BaseModel):
    loyalty: Loyalty = Field(default_factory=Loyalty)
    rfm: RFM | None = Field(None, description="Set by the periodic RFM refresh; None until the first one.")


class Scores(TypedDict):
    """The RFM scores a segment reads (each None until the first refresh)."""

    recency: int | None
    frequency: int | None
    monetary: int | None
    score: str | None


@computed("loyalty")
def loyalty_tier(p: LoyaltyFacet) -> str | None:
    return p.loyalty.tier


@computed("loyalty")
def loyalty_points(p: LoyaltyFacet) -> int:
    return p.loyalty.balance


@computed("loyalty")
def loyalty_earned(p: LoyaltyFacet) -> int:
    return p.loyalty.earned


@computed("rfm")
def rfm(p: LoyaltyFacet) -> Scores:
    r = p.rfm
    if r is None:
        return Scores(recency=None, frequency=None, monetary=None, score=None)
    return Scores(recency=r.recency, frequency=r.frequency, monetary=r.monetary, score=r.score)


SEGMENT_FIELDS = [loyalty_tier, loyalty_points, loyalty_earned, rfm]
