"""Durations written as a number and a unit, or several: ``"90s"``, ``"1h30m"``, ``"7d"``, ``"2w"``. Journeys
(waits, offsets, re-entry) and audience syncs (how often a batch goes out) are written with them."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
_UNITS["s"] = timedelta(seconds=1)
_DURATION = re.compile(r"(?:\d+[wdhms])+")
_PART = re.compile(r"(\d+)([wdhms])")


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` → 90 minutes; a leading ``-`` makes it negative (an offset before a date)."""
    body = text.strip().removeprefix("-")
    if not _DURATION.fullmatch(body):
        raise ValueError(f"bad duration {text!r}: expected a number and a unit (w, d, h, m, s), like 30m, 1h30m or 7d")
    total = sum((int(n) * _UNITS[u] for n, u in _PART.findall(body)), timedelta())
    return -total if text.strip().startswith("-") else total


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration` (``"1d2h"``, to the second), for writing a definition back."""
    left, parts = int(abs(delta).total_seconds()), []
    for unit in "dhms":
        count, left = divmod(left, int(_UNITS[unit].total_seconds()))
        parts += [f"{count}{unit}"] if count else []
    return ("-" if delta < timedelta() else "") + ("".join(parts) or "0s")
