"""Unhappy feedback: a detractor's survey answer and a 1-2 star review raise one alert each, at once; happy
ones and old news none; the state machine raises them on a profile change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.notifier.complaints import SlaPolicy
from services.notifier.feedback import NEWS_FOR, feedback_alerts
from services.notifier.machine import RaiseAlert, Rules, on_profile
from services.notifier.state import ProfileTimers

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


def test_the_state_machine_raises_them_on_a_profile_change() -> None:
    rules = Rules({}, SlaPolicy({"high": 60.0, "normal": 600.0, "low": 3600.0}, Decimal(1000)), timedelta(hours=1))
    change = {"profile_id": "P", "version": 3, "recent_surveys": [answer(nps=3)], "recent_reviews": [review()]}
    _, effects = on_profile(rules, ProfileTimers("P"), change, NOW)
    assert [e.alert.kind for e in effects if isinstance(e, RaiseAlert)] == ["detractor", "bad_review"]
