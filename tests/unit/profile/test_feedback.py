"""The feedback facet: survey answers and product reviews, the latest scores whatever the order of
arrival, averages, redeliveries, merges, segment fields, export and erasure."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pydantic import ValidationError

from crmhub.core.conditions.fields import source_view
from crmhub.core.conditions.language import evaluate
from crmhub.core.sql import make_engine
from schemas.events import Event
from schemas.profile import Profile
from services.profile.facets.feedback import MAX_RECENT
from services.profile.fold import fold_events
from services.profile.merge import merge_profiles
from services.profile.store import ProfileStore
from services.segmenter.rules import load_definitions
from tests.unit import factories as f
from tests.unit.profile import events as ev


def test_survey_answers_give_the_latest_scores_and_the_csat_average() -> None:
    p = fold_events(None, "P", [ev.survey("r-1", nps=9, csat=5), ev.survey("r-2", csat=2, minutes=5)])
    assert (p.nps_latest, p.csat_latest, p.csat_avg, p.surveys_answered) == (9, 2, 3.5, 2)
    (first, second) = p.recent_surveys
    assert (first.response_id, first.nps, second.nps, second.at) == ("r-1", 9, None, f.at(5))


def test_the_latest_score_is_the_latest_answer_s_whatever_the_order_of_arrival() -> None:
    events = [ev.survey("r-1", nps=3, minutes=0), ev.survey("r-2", nps=10, minutes=9), ev.review("v-1", 4, minutes=3)]
    results = {_facet(fold_events(None, "P", list(order))) for order in itertools.permutations(events)}
    assert len(results) == 1
    assert fold_events(None, "P", events[::-1]).nps_latest == 10


def _facet(p: Profile) -> str:
    fields = {"recent_surveys", "recent_reviews", "nps_latest", "nps_latest_at", "csat_avg", "review_avg"}
    return p.model_dump_json(include=fields | {"surveys_answered", "reviews_count"})


def test_reviews_give_an_average_rating_and_redeliveries_count_once() -> None:
    one, two = ev.review("v-1", 1), ev.review("v-2", 4, minutes=1)
    p = fold_events(None, "P", [one, two, one, ev.survey("r-1", nps=8), ev.survey("r-1", nps=8)])
    assert (p.reviews_count, p.review_avg, p.surveys_answered, p.recent_reviews[0].product_id) == (2, 2.5, 1, "kettle")


def test_recent_answers_are_bounded_the_counts_are_not() -> None:
    p = fold_events(None, "P", [ev.survey(f"r-{n:03d}", csat=5, minutes=n) for n in range(MAX_RECENT + 3)])
    assert len(p.recent_surveys) == MAX_RECENT and p.recent_surveys[0].response_id == "r-003"
    assert (p.surveys_answered, p.csat_count) == (MAX_RECENT + 3, MAX_RECENT + 3)


@pytest.mark.parametrize(("nps", "category"), [(0, "detractor"), (6, "detractor"), (7, "passive"), (9, "promoter")])
def test_segment_fields_put_the_latest_nps_in_its_category(nps: int, category: str) -> None:
    view = source_view(fold_events(None, "P", [ev.survey("r-1", nps=10), ev.survey("r-2", nps=nps, minutes=1)]))
    assert (view["nps_latest"], view["nps_category"], view["surveys_answered"]) == (nps, category, 2)


def test_segment_fields_without_feedback_are_null() -> None:
    view = source_view(fold_events(None, "P", [ev.review("v-1", 2)]))
    assert (view["nps_category"], view["csat_avg"], view["review_avg"], view["reviews_count"]) == (None, None, 2.0, 1)


def test_the_shipped_feedback_segments() -> None:
    shipped = [d for d in load_definitions() if d.name in {"detractors", "promoters", "unhappy_reviewers"}]
    assert len(shipped) == 3

    def segments(*events: Event) -> set[str]:
        return evaluate(shipped, source_view(fold_events(None, "P", list(events))), f.at(60))

    assert segments(f.identify({"name": "Ann"})) == set()  # no feedback: null scores are in none
    assert segments(ev.survey("r-1", nps=4), ev.review("v-1", 2)) == {"detractors", "unhappy_reviewers"}
    assert segments(ev.survey("r-1", nps=4), ev.survey("r-2", nps=10, minutes=1), ev.review("v-1", 3)) == {"promoters"}


def test_a_survey_answer_must_answer_something() -> None:
    with pytest.raises(ValidationError, match="needs 'nps', 'csat' or 'text'"):
        ev.survey("r-1")
    with pytest.raises(ValidationError):
        ev.survey("r-1", nps=11)


def test_merge_adds_counts_once_and_keeps_the_later_score() -> None:
    shared = ev.survey("r-1", nps=2, csat=1, minutes=0)
    survivor_events = [shared, ev.review("v-1", 5, minutes=1)]
    absorbed_events = [shared, ev.survey("r-2", nps=9, csat=4, minutes=5), ev.review("v-2", 1, minutes=6)]
    merged = merge_profiles(fold_events(None, "S", survivor_events), fold_events(None, "A", absorbed_events))
    assert _facet(merged) == _facet(fold_events(None, "S", [*survivor_events, *absorbed_events]))
    assert (merged.nps_latest, merged.csat_avg, merged.review_avg, merged.surveys_answered) == (9, 2.5, 3.0, 2)


def test_export_carries_the_answers_and_erasure_removes_them(tmp_path: Path) -> None:
    answer = ev.survey("r-1", nps=3, extra={"text": "nobody called back", "case_id": "c-1"})
    p = fold_events(None, "P", [answer])
    exported = p.model_dump(mode="json")
    assert exported["recent_surveys"][0] | {"at": None} == {
        "response_id": "r-1", "survey_id": None, "nps": 3, "csat": None, "text": "nobody called back",
        "order_id": None, "case_id": "c-1", "at": None,
    }  # fmt: skip
    store = ProfileStore(make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}"))
    store.save([p], [], "g", "i", {})
    assert store.load(["P"])["P"].recent_surveys == p.recent_surveys
    store.erase(["P"], f.at(5))
    assert store.load(["P"]) == {}
