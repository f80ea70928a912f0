"""The months a customer ordered in (``order_months``): how many counted orders each month holds, so the
report cohorts know in which months a customer was active (services/profile/reports.py)."""

from __future__ import annotations

from datetime import UTC, datetime


def month_of(at: datetime) -> str:
    """The (UTC) month of a time as ``order_months`` keys it: ``"2026-03"``."""
    return at.astimezone(UTC).strftime("%Y-%m")


def count_month(months: dict[str, int], month: str, sign: int) -> None:
    """Add ``sign`` orders to a month (a month left with none is dropped)."""
    left = months.get(month, 0) + sign
    if left > 0:
        months[month] = left
    else:
        months.pop(month, None)
