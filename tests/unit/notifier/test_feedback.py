"""Unhappy feedback: a detractor's survey answer and a 1-2 star review raise one alert each, at once; happy
ones and old news none; a profile change raises them with the other instant alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notifier.feedback import NEWS_FOR, feedback_alerts
from services.notifier.profile_alerts import profile_alerts

AT = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
NOW = AT + timedelta(minutes=5)


def answer(response_id: str = "r-1", **kw: Any) -> dict[str, Any]:
    return {"response_id": response_id, "survey_id": "after-case", "text": "", "at": AT.isoformat(), **kw}


def review(review_id: str = "v-1", rating: int = 1) -> dict[str, Any]:
    doc = {"review_id": review_id, "product_id": "kettle", "rating": rating, "text": "broke in a week"}
    return {**doc, "order_id": "o-1", "at": AT.isoformat()}


@pytest.mark.parametrize(
    ("scores", "unhappy"),
    [({"nps": 6}, True), ({"nps": 0, "csat": 5}, True), ({"csat": 2}, True), ({"nps": 7, "csat": 3}, False)],
)
def test_a_detractor_or_a_dissatisfied_answer_raises_a_detractor_alert(scores: dict[str, int], unhappy: bool) -> None:
    alerts = feedback_alerts({"profile_id": "P", "recent_surveys": [answer(**scores)]}, NOW)
    assert [a.kind for a in alerts] == (["detractor"] if unhappy else [])


def test_the_detractor_alert_names_the_scores_the_case_and_the_customer() -> None:
    profile = {"profile_id": "P", "recent_surveys": [answer(nps=2, csat=1, case_id="c-1", text="nobody called")]}
    (alert,) = feedback_alerts(profile, NOW)
    assert alert.summary == "unhappy survey answer (NPS 2, CSAT 1) about case c-1: nobody called"
    assert (alert.details["case_id"], alert.details["nps"], alert.details["customer"]["order_count"]) == ("c-1", 2, 0)
    again = feedback_alerts({**profile, "order_count": 4}, NOW + timedelta(minutes=1))
    assert [a.alert_id for a in again] == [alert.alert_id]  # the answer is the cause: raised once


def test_a_one_or_two_star_review_raises_a_bad_review_alert() -> None:
    profile = {"profile_id": "P", "recent_reviews": [review("v-1", 1), review("v-2", 3), review("v-3", 2)]}
    alerts = feedback_alerts(profile, NOW)
    assert [(a.kind, a.details["review_id"]) for a in alerts] == [("bad_review", "v-1"), ("bad_review", "v-3")]
    assert alerts[0].summary == "1-star review of kettle: broke in a week"


def test_feedback_read_long_after_it_was_given_is_history() -> None:
    profile = {"profile_id": "P", "recent_surveys": [answer(nps=1)], "recent_reviews": [review()]}
    assert feedback_alerts(profile, AT + NEWS_FOR) != []
    assert feedback_alerts(profile, AT + NEWS_FOR + timedelta(seconds=1)) == []


def test_a_profile_change_raises_them_with_the_other_instant_alerts() -> None:
    failed = {"payment_id": "pay-1", "amount": "9.00", "currency": "EUR", "reason": "declined", "at": AT.isoformat()}
    change = {"profile_id": "P", "recent_surveys": [answer(nps=3)], "recent_reviews": [review()]}
    alerts = profile_alerts({**change, "recent_payment_failures": [failed]}, timedelta(hours=1), NOW)
    assert [a.kind for a in alerts] == ["payment_failed", "detractor", "bad_review"]
