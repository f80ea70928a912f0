"""Durations, local times across daylight-saving changes, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from crmhub.core.durations import format_duration, parse_duration
from services.notifier.journeys.timing import next_local, quiet_until, zone

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("1h30m", timedelta(minutes=90)), ("7d", timedelta(days=7)), ("2w", timedelta(14)),
     ("-30d", timedelta(days=-30))],
)  # fmt: skip
def test_durations_parse_and_write_back(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


def test_format_duration_uses_the_largest_units() -> None:
    assert format_duration(timedelta(days=1, hours=2, minutes=3)) == "1d2h3m"
    assert format_duration(timedelta()) == "0s"


@pytest.mark.parametrize("text", ["", "2 days", "1.5h", "h", "10", "1y"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"bad duration .*expected a number and a unit \(w, d, h, m, s\)"):
        parse_duration(text)


def test_next_local_time_is_the_wall_clock_time_in_the_zone() -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 14:00 in Berlin
    assert next_local(now, time(15), BERLIN) == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    assert next_local(now, time(9), BERLIN) == datetime(2026, 6, 2, 7, 0, tzinfo=UTC)  # tomorrow


def test_next_local_time_across_the_spring_change() -> None:
    # 29 March 2026: Berlin goes from 02:00 CET to 03:00 CEST; 09:00 that day is 07:00 UTC, not 08:00
    assert next_local(datetime(2026, 3, 28, 12, 0, tzinfo=UTC), time(9), BERLIN) == datetime(2026, 3, 29, 7, tzinfo=UTC)
    # 02:30 does not exist that day: the same distance past the gap, 03:30 CEST
    skipped = next_local(datetime(2026, 3, 28, 12, 0, tzinfo=UTC), time(2, 30), BERLIN)
    assert skipped == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_next_local_time_across_the_autumn_change() -> None:
    # 25 October 2026: back from CEST to CET; 09:00 is 08:00 UTC; 02:30 happens twice: the first one
    assert next_local(datetime(2026, 10, 24, 12, tzinfo=UTC), time(9), BERLIN) == datetime(2026, 10, 25, 8, tzinfo=UTC)
    twice = next_local(datetime(2026, 10, 24, 12, tzinfo=UTC), time(2, 30), BERLIN)
    assert twice.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # (== across zones: PEP 495)


def test_quiet_hours_over_midnight_end_in_the_morning() -> None:
    late = datetime(2026, 6, 1, 20, 30, tzinfo=UTC)  # 22:30 in Berlin
    assert quiet_until(late, time(21), time(8), BERLIN) == datetime(2026, 6, 2, 6, 0, tzinfo=UTC)
    early = datetime(2026, 6, 2, 4, 0, tzinfo=UTC)  # 06:00
    assert quiet_until(early, time(21), time(8), BERLIN) == datetime(2026, 6, 2, 6, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 6, 1, 12, tzinfo=UTC), time(21), time(8), BERLIN) is None


def test_quiet_hours_within_a_day() -> None:
    lunch = datetime(2026, 6, 1, 10, 30, tzinfo=UTC)  # 12:30 in Berlin
    assert quiet_until(lunch, time(12), time(14), BERLIN) == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert quiet_until(lunch, time(13), time(14), BERLIN) is None


def test_an_unknown_zone_falls_back_to_the_default() -> None:
    assert zone("Mars/Olympus", BERLIN) is BERLIN
    assert zone(None, BERLIN) is BERLIN
    assert zone("America/New_York", BERLIN) == ZoneInfo("America/New_York")
