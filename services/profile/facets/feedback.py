"""The feedback facet: survey answers (``survey.answered``: NPS, CSAT, free text) and product reviews
(Segment's ``Product Reviewed``).

Each answer and review counts once by its id (the latest ``MAX_IDS`` remembered); the latest score is
the one of the latest answer by its time, whatever the order of arrival; the averages are kept as sums
and counts, so a merge adds them up. The last ``MAX_RECENT`` answers and reviews are kept with their text
(cut to ``TEXT_CHARS``) for support and the alerts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeVar

from schemas.events import ProductReviewed, SurveyAnswered
from schemas.profile import ProductReview, Profile, SurveyAnswer
from services.profile.facets import Facet
from services.profile.policy import FoldRules

MAX_RECENT = 20
MAX_IDS = 200
TEXT_CHARS = 500
Feedback = TypeVar("Feedback", SurveyAnswer, ProductReview)


def fold_survey(p: Profile, e: SurveyAnswered, rules: FoldRules) -> None:
    props = e.properties
    if not _first_time(p, props.response_id):
        return
    answer = SurveyAnswer(**props.model_dump(exclude={"text"}), text=props.text[:TEXT_CHARS], at=e.occurred_at)
    p.surveys_answered += 1
    p.recent_surveys = _latest([*p.recent_surveys, answer])
    if props.csat is not None:
        p.csat_count += 1
        p.csat_total += props.csat
    _keep_latest(p, "nps", props.nps, e.occurred_at)
    _keep_latest(p, "csat", props.csat, e.occurred_at)
    _averages(p)


def fold_review(p: Profile, e: ProductReviewed, rules: FoldRules) -> None:
    props = e.properties
    if not _first_time(p, props.review_id):
        return
    review = ProductReview(
        review_id=props.review_id,
        product_id=props.product_id,
        rating=props.rating,
        text=props.review_body[:TEXT_CHARS],
        order_id=props.order_id,
        at=e.occurred_at,
    )
    p.reviews_count += 1
    p.review_rating_total += props.rating
    p.recent_reviews = _latest([*p.recent_reviews, review])
    _averages(p)


def _first_time(p: Profile, feedback_id: str) -> bool:
    if feedback_id in p.feedback_ids:
        return False
    p.feedback_ids = [*p.feedback_ids, feedback_id][-MAX_IDS:]
    return True


def _latest(items: list[Feedback]) -> list[Feedback]:
    return sorted(items, key=lambda x: x.at)[-MAX_RECENT:]


def _keep_latest(p: Profile, score: Literal["nps", "csat"], value: int | None, at: datetime | None) -> None:
    """``value`` becomes the latest score if it was given later than the one held."""
    known: datetime | None = getattr(p, f"{score}_latest_at")
    if value is not None and at is not None and (known is None or at > known):
        setattr(p, f"{score}_latest", value)
        setattr(p, f"{score}_latest_at", at)


def _averages(p: Profile) -> None:
    p.csat_avg = p.csat_total / p.csat_count if p.csat_count else None
    p.review_avg = p.review_rating_total / p.reviews_count if p.reviews_count else None


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Counts and sums added (an answer or review both folded, while still among their recent ones, once);
    ids and recent ones united; the latest scores the later of the two."""
    both = set(survivor.feedback_ids) & set(absorbed.feedback_ids)
    twice_surveys = [a for a in survivor.recent_surveys if a.response_id in both]
    twice_reviews = [r for r in survivor.recent_reviews if r.review_id in both]
    merged.surveys_answered = survivor.surveys_answered + absorbed.surveys_answered - len(twice_surveys)
    merged.csat_count = survivor.csat_count + absorbed.csat_count - sum(a.csat is not None for a in twice_surveys)
    merged.csat_total = survivor.csat_total + absorbed.csat_total - sum(a.csat or 0 for a in twice_surveys)
    merged.reviews_count = survivor.reviews_count + absorbed.reviews_count - len(twice_reviews)
    merged.review_rating_total = (
        survivor.review_rating_total + absorbed.review_rating_total - sum(r.rating for r in twice_reviews)
    )
    merged.feedback_ids = list(dict.fromkeys([*absorbed.feedback_ids, *survivor.feedback_ids]))[-MAX_IDS:]
    surveys = {a.response_id: a for a in [*absorbed.recent_surveys, *survivor.recent_surveys]}
    reviews = {r.review_id: r for r in [*absorbed.recent_reviews, *survivor.recent_reviews]}
    merged.recent_surveys, merged.recent_reviews = _latest(list(surveys.values())), _latest(list(reviews.values()))
    _keep_latest(merged, "nps", absorbed.nps_latest, absorbed.nps_latest_at)  # merged holds the survivor's
    _keep_latest(merged, "csat", absorbed.csat_latest, absorbed.csat_latest_at)
    _averages(merged)


FACET = Facet("feedback", merge, folds={SurveyAnswered: fold_survey, ProductReviewed: fold_review})
