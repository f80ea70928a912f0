"""The notifier's per-profile state and the table documents it is kept in (the format earlier versions
wrote, so a changelog written before the state machine stays readable)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notifier.abandonment import Pending
from services.notifier.complaints import ComplaintTimer
from services.notifier.state import ComplaintClock, ProfileTimers, Wait, profile_of_key

SINCE = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
PENDING = Pending("cart_abandoned", "P:1", SINCE, SINCE + timedelta(hours=1), {"item_count": 2})
COMPLAINT = {"message_id": "m-1", "platform": "x", "handle": "ann", "text": "late", "at": SINCE.isoformat()}


def test_a_wait_document_holds_the_pending_wait_its_version_and_due_time_none_once_fired() -> None:
    wait = Wait(PENDING, 7)
    doc = wait.to_json()
    assert doc == {"pending": PENDING.to_json(), "version": 7, "due": (SINCE + timedelta(hours=1)).timestamp()}
    assert Wait.from_json({**doc, "partition": 3}) == wait  # the adapter's partition is not state
    fired = Wait(PENDING, 7, fired=True)
    assert fired.to_json()["due"] is None and Wait.from_json(fired.to_json()) == fired
    assert (wait.table, wait.key) == ("abandonment", "cart_abandoned:P:1")


def test_a_complaint_clock_document_holds_the_timers_by_message_and_the_earliest_due_time() -> None:
    due = SINCE + timedelta(minutes=10)
    timer = ComplaintTimer("P:1", COMPLAINT, "normal", 1, due)
    top = ComplaintTimer("P:1", {**COMPLAINT, "message_id": "m-2"}, "high", 3, None)
    clock = ComplaintClock("P:1", {"m-1": timer, "m-2": top}, 4)
    doc = clock.to_json()
    assert doc == {"timers": {"m-1": timer.to_json(), "m-2": top.to_json()}, "version": 4, "due": due.timestamp()}
    assert ComplaintClock.from_json("P:1", {**doc, "partition": 0}) == clock
    assert (clock.table, clock.key) == ("complaints", "P:1")
    assert ComplaintClock("P:1", {"m-2": top}, 4).due is None


def test_the_profile_id_of_a_table_key_and_the_entries_of_a_profile() -> None:
    assert profile_of_key("abandonment", "browse_abandoned:P:1") == "P:1"
    assert profile_of_key("complaints", "P:1") == "P:1"
    clock = ComplaintClock("P:1", {}, 1)
    assert ProfileTimers("P:1", {"cart_abandoned": Wait(PENDING, 1)}, clock).entries() == [Wait(PENDING, 1), clock]
    assert ProfileTimers("P:1").entries() == []
