"""What the alert rules share: deterministic ids, the customer summary, the bounded id memory."""

from __future__ import annotations

from services.notifier.rules import RecentIds, alert_id, customer_summary


def test_alert_ids_are_the_kind_and_a_digest_of_the_cause() -> None:
    first = alert_id("complaint", "twitter", "m-1")
    assert first.startswith("complaint:") and len(first) == len("complaint:") + 24
    assert first == alert_id("complaint", "twitter", "m-1")
    assert len({first, alert_id("complaint", "twitter", "m-2"), alert_id("complaint", "twitterm", "-1")}) == 3


def test_the_customer_summary_names_value_orders_open_complaints_and_cases_and_rfm() -> None:
    profile = {"total_spent": "120.50", "currency": "EUR", "order_count": 3, "open_complaints": [{}, {}]}
    cases = [{"case_id": "c-1", "opened_at": "2026-01-01T10:00:00Z"}, {"case_id": "c-2"}]  # c-2: notes only
    assert customer_summary({**profile, "rfm": {"score": "545"}, "open_cases": cases}) == {
        "total_spent": "120.50",
        "currency": "EUR",
        "order_count": 3,
        "open_complaints": 2,
        "open_cases": 1,
        "rfm": "545",
    }
    assert customer_summary({}) == {
        "total_spent": "0",
        "currency": None,
        "order_count": 0,
        "open_complaints": 0,
        "open_cases": 0,
        "rfm": None,
    }


def test_recent_ids_forget_the_oldest_beyond_capacity() -> None:
    ids = RecentIds(2)
    for item in ("a", "b", "c"):
        ids.add(item)
    assert ("a" in ids, "b" in ids, "c" in ids) == (False, True, True)
