"""The notifier wiring's pure helper: which cached profile may be used."""

from __future__ import annotations

from services.notifier.app import newer


def test_a_cached_profile_older_than_the_timer_is_not_used() -> None:
    assert newer({"version": 7}, 7) == {"version": 7}
    assert newer({"version": 8}, 7) == {"version": 8}
    assert newer({"version": 6}, 7) is None
    assert newer(None, 7) is None
