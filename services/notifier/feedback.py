"""Pure feedback rules: a detractor's survey answer (NPS 0-6, or CSAT 1-2) raises a ``detractor`` alert, a
1-2 star review a ``bad_review`` alert, at once, once each; both are routed like complaints (the
``complaint`` route, unless the routes file gives the kind one of its own: ``crmhub.core.routing``).

No SLA clock: nothing in the contract answers a survey or a review. Support follows an unhappy customer
up by opening a case (``support.case_opened``), which the complaint SLA then times. The ids come from the
answer's or review's id, so every later change of the profile yields the *same* alert. An answer or
review read more than :data:`NEWS_FOR` after it was given (a replay, a backfill) is history: no alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.facets.feedback import DETRACTOR_NPS
from schemas.outputs import Alert
from services.notifier.rules import alert_id, customer_summary
from services.notifier.view import ProfileDoc, ReviewDoc, SurveyDoc

NEWS_FOR = timedelta(days=2)
DISSATISFIED_CSAT = 2
BAD_RATING = 2


def feedback_alerts(profile: ProfileDoc, now: datetime) -> list[Alert]:
    fresh = now - NEWS_FOR
    surveys = [s for s in profile.get("recent_surveys") or [] if datetime.fromisoformat(s["at"]) >= fresh]
    reviews = [r for r in profile.get("recent_reviews") or [] if datetime.fromisoformat(r["at"]) >= fresh]
    alerts = [_detractor(profile, s, now) for s in surveys if _unhappy(s)]
    return alerts + [_bad_review(profile, r, now) for r in reviews if r["rating"] <= BAD_RATING]


def _unhappy(s: SurveyDoc) -> bool:
    nps, csat = s.get("nps"), s.get("csat")
    return (nps is not None and nps <= DETRACTOR_NPS) or (csat is not None and csat <= DISSATISFIED_CSAT)


def _detractor(profile: ProfileDoc, s: SurveyDoc, now: datetime) -> Alert:
    scores = ", ".join(f"{k.upper()} {s.get(k)}" for k in ("nps", "csat") if s.get(k) is not None)
    about = next((f" about {k.split('_')[0]} {s.get(k)}" for k in ("case_id", "order_id") if s.get(k)), "")
    keys = ("response_id", "survey_id", "nps", "csat", "text", "order_id", "case_id", "at")
    return Alert(
        alert_id=alert_id("detractor", s["response_id"]),
        kind="detractor",
        profile_id=profile["profile_id"],
        raised_at=now,
        summary=f"unhappy survey answer ({scores}){about}: {s.get('text', '')[:120]}",
        details={**{k: s.get(k) for k in keys}, "customer": customer_summary(profile)},
    )


def _bad_review(profile: ProfileDoc, r: ReviewDoc, now: datetime) -> Alert:
    keys = ("review_id", "product_id", "rating", "text", "order_id", "at")
    return Alert(
        alert_id=alert_id("bad_review", r["review_id"]),
        kind="bad_review",
        profile_id=profile["profile_id"],
        raised_at=now,
        summary=f"{r['rating']}-star review of {r['product_id']}: {r.get('text', '')[:120]}",
        details={**{k: r.get(k) for k in keys}, "customer": customer_summary(profile)},
    )
