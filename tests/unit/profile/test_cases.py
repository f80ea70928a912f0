"""The cases facet: cases opened from every channel, notes, the first response (a reply, an answered
complaint, the closing), handling times whatever the order events arrive in, bounds, merges, segment
fields, export and erasure."""

from __future__ import annotations

import itertools
from pathlib import Path

from crmhub.core.conditions.fields import source_view
from crmhub.core.conditions.language import evaluate
from crmhub.core.sql import make_engine
from schemas.events import Event
from schemas.profile import Profile
from services.profile.facets.cases import MAX_CLOSED, MAX_NOTES
from services.profile.fold import fold_events
from services.profile.merge import merge_profiles
from services.profile.store import ProfileStore
from services.segmenter.rules import load_definitions
from tests.unit import factories as f
from tests.unit.profile import events as ev


def test_a_case_opened_by_phone_is_open_until_closed_with_its_handling_times() -> None:
    opened = ev.case_opened("c-1", extra={"order_id": "o-1", "product_id": "kettle", "priority": "high"})
    p = fold_events(None, "P", [opened, ev.note("c-1", "n-1", reply=False, minutes=2)])
    (case,) = p.open_cases
    assert (case.channel, case.category, case.priority, case.order_id, case.product_id) == (
        "phone", "repair", "high", "o-1", "kettle",
    )  # fmt: skip
    assert (case.opened_at, case.first_response_at, p.cases_responded) == (f.at(0), None, 0)  # an internal note
    p = fold_events(p, "P", [ev.note("c-1", "n-2", minutes=10), ev.case_closed("c-1", minutes=60)])
    assert (p.open_cases, [c.case_id for c in p.closed_cases]) == ([], ["c-1"])
    assert (p.closed_cases[0].first_response_s, p.closed_cases[0].handling_s) == (600.0, 3600.0)
    assert (p.cases_opened, p.cases_responded, p.cases_closed) == (1, 1, 1)
    assert (p.avg_case_response_s, p.avg_case_handling_s) == (600.0, 3600.0)
    assert [(n.note_id, n.reply, n.agent) for n in p.case_notes] == [("n-1", False, "anna.k"), ("n-2", True, "anna.k")]


def test_closing_a_case_no_one_replied_to_is_its_first_response() -> None:
    p = fold_events(None, "P", [ev.case_opened("c-1"), ev.case_closed("c-1", minutes=30)])
    assert (p.avg_case_response_s, p.avg_case_handling_s) == (1800.0, 1800.0)


def test_a_reply_to_the_social_complaint_a_case_is_about_is_the_case_s_first_response() -> None:
    replied = f.make("support.complaint_responded", source="support", minutes=5, properties={
        "message_id": "m-1", "agent": "ben.m", "text": "sorry!",
    })  # fmt: skip
    opened = ev.case_opened("c-1", channel="social", extra={"message_id": "m-1"})
    p = fold_events(None, "P", [opened, ev.case_opened("c-2", minutes=1), replied])
    assert [(c.case_id, c.first_response_s) for c in p.open_cases] == [("c-1", 300.0), ("c-2", None)]


def test_the_fold_does_not_depend_on_the_order_events_arrive_in() -> None:
    events = [
        ev.case_opened("c-1", minutes=0),
        ev.note("c-1", "n-1", reply=False, minutes=1),
        ev.note("c-1", "n-2", minutes=5),
        ev.case_closed("c-1", minutes=20),
        ev.case_opened("c-2", minutes=30),
        ev.note("c-2", "n-3", minutes=31),
    ]
    results = {_facet(fold_events(None, "P", list(order))) for order in itertools.permutations(events)}
    assert len(results) == 1
    p = fold_events(None, "P", events[::-1])
    assert (p.cases_opened, p.cases_responded, p.cases_closed) == (2, 2, 1)
    assert (p.avg_case_response_s, p.avg_case_handling_s) == (180.0, 1200.0)


def _facet(p: Profile) -> str:
    fields = {"open_cases", "closed_cases", "case_notes", "cases_opened", "cases_responded", "cases_closed"}
    return p.model_dump_json(include=fields | {"avg_case_response_s", "avg_case_handling_s"})


def test_a_redelivered_opening_or_closing_counts_once_and_a_closed_case_stays_closed() -> None:
    opened, closed = ev.case_opened("c-1"), ev.case_closed("c-1", minutes=10)
    p = fold_events(None, "P", [opened, closed, opened, closed, ev.note("c-1", "n-1", minutes=20)])
    assert (p.open_cases, p.cases_opened, p.cases_closed, p.avg_case_handling_s) == ([], 1, 1, 600.0)


def test_notes_and_closed_cases_are_bounded_the_totals_are_not() -> None:
    events: list[Event] = []
    for n in range(MAX_CLOSED + 5):
        events += [ev.case_opened(f"c-{n:03d}", minutes=n), ev.case_closed(f"c-{n:03d}", minutes=n + 1)]
    events += [ev.note("c-000", f"n-{n:03d}", reply=False, minutes=n) for n in range(MAX_NOTES + 5)]
    p = fold_events(None, "P", events)
    assert len(p.closed_cases) == MAX_CLOSED and p.closed_cases[0].case_id == "c-005"
    assert len(p.case_notes) == MAX_NOTES and p.case_notes[0].note_id == "n-005"
    assert (p.cases_closed, p.avg_case_handling_s) == (MAX_CLOSED + 5, 60.0)


def test_notes_keep_a_bounded_text() -> None:
    long = f.make("support.note_added", source="support", properties={
        "case_id": "c-1", "note_id": "n-1", "text": "x" * 3000,
    })  # fmt: skip
    assert len(fold_events(None, "P", [long]).case_notes[0].text) == 1000


def test_segment_fields_count_open_and_unanswered_cases() -> None:
    events = [ev.case_opened("c-1"), ev.case_opened("c-2", minutes=5), ev.note("c-2", "n-1", minutes=6)]
    events += [ev.note("c-9", "n-2", minutes=7)]  # a case whose opening has not come: not counted
    view = source_view(fold_events(None, "P", events))
    assert (view["open_case_count"], view["unanswered_case_count"], view["last_case_opened_at"]) == (2, 1, f.at(5))
    assert (view["cases_opened"], view["cases_closed"], view["avg_case_response_s"]) == (2, 0, 60.0)
    (shipped,) = [d for d in load_definitions() if d.name == "open_service_case"]
    assert evaluate([shipped], view, f.at(60)) == {"open_service_case"}
    closed = fold_events(None, "P", [*events, ev.case_closed("c-1", minutes=8), ev.case_closed("c-2", minutes=9)])
    assert evaluate([shipped], source_view(closed), f.at(60)) == set()


def test_merge_counts_a_case_known_to_both_once_with_the_earliest_times() -> None:
    survivor_events = [ev.case_opened("c-1"), ev.note("c-1", "n-1", minutes=10), ev.case_opened("c-2", minutes=1)]
    absorbed_events = [ev.case_opened("c-1"), ev.note("c-1", "n-2", minutes=4), ev.case_closed("c-1", minutes=30)]
    absorbed_events += [ev.case_closed("c-2", minutes=8)]  # the closing of the survivor's case
    merged = merge_profiles(fold_events(None, "S", survivor_events), fold_events(None, "A", absorbed_events))
    folded = fold_events(None, "S", [*survivor_events, *absorbed_events])
    assert _facet(merged) == _facet(folded)
    assert (merged.cases_opened, merged.cases_closed, merged.avg_case_response_s) == (2, 2, 330.0)
    assert [n.note_id for n in merged.case_notes] == ["n-2", "n-1"]


def test_export_carries_cases_and_notes_and_erasure_removes_them(tmp_path: Path) -> None:
    p = fold_events(None, "P", [ev.case_opened("c-1"), ev.note("c-1", "n-1", minutes=1)])
    exported = p.model_dump(mode="json")  # what /v1/profiles/{id}/export returns as its profile
    assert exported["open_cases"][0]["case_id"] == "c-1" and exported["case_notes"][0]["text"] == "we are on it"
    store = ProfileStore(make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}"))
    store.save([p], [], "g", "i", {})
    assert store.load(["P"])["P"].case_notes == p.case_notes
    store.erase(["P"], f.at(5))
    assert store.load(["P"]) == {}
