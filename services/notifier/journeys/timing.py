"""Times of day and time zones in journeys (durations: :mod:`crmhub.core.durations`): ``"09:00"`` in the
customer's zone. Local times are resolved with :mod:`zoneinfo`, so a wait "until 09:00" is 09:00 on the
customer's wall clock across daylight-saving changes; a local time that does not exist that day (the hour
skipped in spring) resolves to the same distance past the gap, an ambiguous one (autumn) to its first
occurrence. Pure: ``now`` is always given.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def parse_time_of_day(text: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"bad time of day {text!r}: expected HH:MM") from exc


def zone(name: str | None, default: ZoneInfo) -> ZoneInfo:
    """The customer's time zone (an IANA name on the profile), else ``default``."""
    if not name:
        return default
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return default


def at_local(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant of wall-clock ``at`` on ``day`` in ``tz``, in UTC terms (see the module for DST)."""
    local = datetime.combine(day, at, tzinfo=tz)
    return local.astimezone(ZoneInfo("UTC")).astimezone(tz)


def next_local(now: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first instant after ``now`` whose wall-clock time in ``tz`` is ``at``."""
    today = now.astimezone(tz).date()
    for offset in (0, 1, 2):
        candidate = at_local(today + timedelta(days=offset), at, tz)
        if candidate > now:
            return candidate
    raise AssertionError("a wall-clock time recurs within two days")


def quiet_until(now: datetime, start: time, end: time, tz: ZoneInfo) -> datetime | None:
    """When the quiet hours ``start``-``end`` (local, may span midnight) that hold at ``now`` end; None
    when ``now`` is outside them."""
    local = now.astimezone(tz).time().replace(tzinfo=None)
    inside = start <= local < end if start <= end else local >= start or local < end
    return next_local(now, end, tz) if inside else None
