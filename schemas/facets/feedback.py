"""Feedback and satisfaction: survey answers (NPS, CSAT, free text) and product reviews, the latest scores
and the averages a segment reads."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField, computed, stored

NpsCategory = Literal["promoter", "passive", "detractor"]
DETRACTOR_NPS = 6  # an answer of 0-6 is a detractor's, 7-8 a passive's, 9-10 a promoter's
PROMOTER_NPS = 9


class SurveyAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    response_id: str
    survey_id: str | None = None
    nps: int | None = None
    csat: int | None = None
    text: str = ""
    order_id: str | None = None
    case_id: str | None = None
    at: AwareDatetime


class ProductReview(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    review_id: str
    product_id: str
    rating: int
    text: str = ""
    order_id: str | None = None
    at: AwareDatetime


class FeedbackFacet(BaseModel):
    recent_surveys: list[SurveyAnswer] = Field(default_factory=list, description="The latest answers, oldest first.")
    recent_reviews: list[ProductReview] = Field(default_factory=list, description="The latest reviews, oldest first.")
    feedback_ids: list[str] = Field(
        default_factory=list, description="The latest response and review ids folded: a redelivery counts once."
    )
    surveys_answered: int = 0
    nps_latest: int | None = Field(None, description="The NPS of the latest answer that gave one (0-10).")
    nps_latest_at: AwareDatetime | None = None
    csat_latest: int | None = Field(None, description="The CSAT of the latest answer that gave one (1-5).")
    csat_latest_at: AwareDatetime | None = None
    csat_count: int = 0
    csat_total: int = 0
    csat_avg: float | None = None
    reviews_count: int = 0
    review_rating_total: int = 0
    review_avg: float | None = Field(None, description="Mean stars of the customer's reviews.")


def nps_category_of(score: int) -> NpsCategory:
    return "detractor" if score <= DETRACTOR_NPS else "promoter" if score >= PROMOTER_NPS else "passive"


@computed("nps_latest")
def nps_category(p: FeedbackFacet) -> str | None:
    """promoter (9-10), passive (7-8) or detractor (0-6) by the latest NPS answer; None: no answer."""
    return None if p.nps_latest is None else nps_category_of(p.nps_latest)


SEGMENT_FIELDS: list[SegmentField] = [nps_category]
SEGMENT_FIELDS += stored(FeedbackFacet, "nps_latest", "csat_latest", "csat_avg", "surveys_answered")
SEGMENT_FIELDS += stored(FeedbackFacet, "reviews_count", "review_avg")
