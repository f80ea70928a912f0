"""The notifier's faust adapter on an in-memory harness: a record of profile changes raises the instant
alerts each change calls for, in order, with the testing clock's time; the changes are counted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.outputs import Alert
from services.notifier.app import Notifier

NOW = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def failed(payment_id: str, order_id: str, minutes: int) -> dict[str, Any]:
    at = (NOW + timedelta(minutes=minutes)).isoformat()
    return {"payment_id": payment_id, "order_id": order_id, "amount": "9", "currency": "EUR", "reason": "x", "at": at}


def test_a_record_of_changes_raises_each_change_s_instant_alerts_and_counts_the_changes() -> None:
    raised: list[Alert] = []

    async def submit(alerts: Sequence[Alert]) -> None:
        raised.extend(alerts)

    notifier = Notifier(timedelta(hours=1), submit, lambda: NOW)
    quiet = {"profile_id": "P0"}
    twice = {"profile_id": "P1", "recent_payment_failures": [failed("a", "o1", 0), failed("b", "o1", 5)]}
    later = {"profile_id": "P2", "recent_payment_failures": [failed("c", "o2", 0), failed("d", "o2", 90)]}
    asyncio.run(notifier.handle([quiet, twice, later]))  # type: ignore[list-item]
    assert [(a.profile_id, a.details["count"]) for a in raised] == [("P1", 2), ("P2", 1), ("P2", 1)]
    assert {a.raised_at for a in raised} == {NOW} and notifier.seen == 3
