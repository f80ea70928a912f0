"""The alert log's records: status derived from the delivery state, the count of a collapsed alert."""

from __future__ import annotations

import pytest

from services.notifier.alertlog import record_of, status_of
from tests.unit.notifier.fixtures import complaint

DOC = complaint().model_dump_json()


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"sinks": "topic,hook"}, "raised"),
        ({"sinks": "topic,hook", "sink:topic": "delivered"}, "raised"),
        ({"sinks": "topic,hook", "sink:topic": "delivered", "sink:hook": "delivered"}, "delivered"),
        ({"sinks": "topic,hook", "sink:topic": "delivered", "sink:hook": "dead"}, "failed"),
        ({"sinks": "topic,hook", "sink:hook": "dead"}, "failed"),  # failed already, the topic under way
        (
            {"sinks": "topic,hook", "limited": "1", "sink:topic": "delivered", "sink:hook": "rate_limited"},
            "rate_limited",
        ),
        ({"sinks": "topic,hook", "limited": "1", "sink:topic": "delivered"}, "raised"),
        ({"sinks": "topic", "sink:topic": "delivered", "acknowledged_at": "2026-01-01T00:00:00Z"}, "acknowledged"),
        ({"sinks": "topic,hook", "sink:hook": "dead", "acknowledged_at": "2026-01-01T00:00:00Z"}, "acknowledged"),
    ],
)
def test_status_of_an_alert(fields: dict[str, str], status: str) -> None:
    assert status_of(fields) == status


def test_a_record_is_the_alert_with_status_deliveries_and_the_highest_count() -> None:
    fields = {"alert": DOC, "sinks": "topic,hook", "sink:topic": "delivered", "sink:hook": "dead", "count": "4"}
    rec = record_of(fields)
    assert rec["alert_id"] == complaint().alert_id and rec["status"] == "failed"
    assert rec["deliveries"] == {"topic": "delivered", "hook": "dead"} and rec["acknowledged_at"] is None
    assert rec["details"]["count"] == 4
    assert "count" not in record_of({"alert": DOC, "sinks": "topic"})["details"]
