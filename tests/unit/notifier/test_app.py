"""The notifier wiring's pure helpers: which table entries are due, which cached profile may be used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notifier.app import due_entries, newer

NOW = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def test_due_entries_are_those_due_by_now_and_not_fired() -> None:
    ts = NOW.timestamp()
    items = [
        ("past", {"due": ts - 1}),
        ("now", {"due": ts}),
        ("later", {"due": (NOW + timedelta(milliseconds=1)).timestamp()}),
        ("fired", {"due": None}),
        ("deleted", None),
    ]
    assert [key for key, _ in due_entries(items, NOW)] == ["past", "now"]


def test_a_cached_profile_older_than_the_timer_is_not_used() -> None:
    assert newer({"version": 7}, 7) == {"version": 7}
    assert newer({"version": 8}, 7) == {"version": 8}
    assert newer({"version": 6}, 7) is None
    assert newer(None, 7) is None
