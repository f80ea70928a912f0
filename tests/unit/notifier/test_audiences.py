"""Audience sync, the pure part: which changes are news, what a change carries, when batches are cut."""

from __future__ import annotations

import orjson
import pytest

from services.notifier.audiences import batch_body, batch_id, batches_due, is_news, marker, sync_entry

T1, T2 = "2026-12-06T10:00:00+00:00", "2026-12-06T11:00:00+00:00"


@pytest.mark.parametrize(
    ("last", "change", "at", "news"),
    [
        (None, "entered", T1, True),  # the first change of a profile
        (marker("entered", T1), "entered", T1, False),  # a replay
        (marker("entered", T1), "entered", T2, False),  # re-published after a segmenter crash: nothing new
        (marker("entered", T1), "exited", T2, True),
        (marker("exited", T2), "entered", T1, False),  # a replay of an older change after a newer one
        (marker("entered", T1), "exited", T1, True),  # in and out at the same instant
    ],
)
def test_a_change_is_news_when_it_differs_from_the_last_one_sent_and_is_not_older(
    last: str | None, change: str, at: str, news: bool
) -> None:
    assert is_news(last, change, at) is news


def test_a_change_carries_the_consented_contact_points() -> None:
    profile = {
        "identifiers": {"email": ["ada@example.com"], "phone": ["+4930123"]},
        "consent": {
            "email": {"marketing": {"granted": True}},
            "sms": {"marketing": {"granted": False}},
            "push": {"marketing": {"granted": True}},
        },
    }
    change = {"segment": "vip", "profile_id": "p1", "change": "entered", "at": T1, "profile_version": 3}
    assert sync_entry(change, profile) == {
        "profile_id": "p1",
        "change": "entered",
        "at": T1,
        "contacts": {"email": "ada@example.com", "push": None},
    }
    assert sync_entry(change, None)["contacts"] == {}  # gone or erased: no contact point


@pytest.mark.parametrize(
    ("queued", "waited", "due"),
    [(0, 99.0, 0), (3, 1.0, 0), (3, 60.0, 1), (500, 0.0, 1), (1001, 0.0, 2), (1001, 60.0, 3)],
)
def test_full_batches_go_at_once_the_rest_when_the_oldest_has_waited(queued: int, waited: float, due: int) -> None:
    assert batches_due(queued, 500, waited, 60.0) == due


def test_the_body_is_the_batch_as_it_was_cut_under_its_id() -> None:
    changes = orjson.dumps([{"profile_id": "p1", "change": "exited", "at": T1, "contacts": {}}])
    body = batch_body("vip", 7, changes)
    assert orjson.loads(body) == {"batch_id": "vip-7", "segment": "vip", "changes": orjson.loads(changes)}
    assert changes in body and batch_body("vip", 7, changes) == body
    assert batch_id("vip", 7) == "vip-7"
