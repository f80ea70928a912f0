"""Complaints: an alert at once, a priority from value and sentiment, SLA timers, escalation to levels 2
and 3, the reply that closes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.notifier.complaints import (
    ComplaintTimer,
    SlaPolicy,
    awaiting,
    complaint_alert,
    escalate,
    next_due,
    priority,
    still_open,
    track_complaints,
)

POLICY = SlaPolicy({"high": 60.0, "normal": 600.0, "low": 3600.0}, Decimal(1000))
AT = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
NOW = AT + timedelta(seconds=5)


def complaint(mention: str = "m-1", platform: str = "twitter", **kw: Any) -> dict[str, Any]:
    return {
        "message_id": mention,
        "platform": platform,
        "handle": "@@ann",
        "text": "late again",
        "sentiment": -0.2,
        "at": AT.isoformat(),
        **kw,
    }


def with_complaints(*complaints: dict[str, Any], **extra: Any) -> dict[str, Any]:
    base = {"profile_id": "P", "total_spent": "120.50", "order_count": 3, "open_complaints": list(complaints)}
    return {**base, **extra}


@pytest.mark.parametrize(
    ("spent", "orders", "rfm", "sentiment", "expected"),
    [
        ("1000.00", 9, None, -0.5, "high"),  # high value (2) + negative (1)
        ("10.00", 1, None, -0.9, "high"),  # a customer (1) + very negative (2)
        ("10.00", 1, {"monetary": 5}, None, "normal"),  # high value by RFM (2), no sentiment
        ("0", 0, None, -0.9, "normal"),  # no orders (0) + very negative (2)
        ("10.00", 1, None, -0.1, "normal"),  # a customer (1), flagged but mild
        ("0", 0, None, None, "low"),
        ("0", 0, None, 0.4, "low"),
    ],
)
def test_priority_from_customer_value_and_sentiment(
    spent: str, orders: int, rfm: dict[str, int] | None, sentiment: float | None, expected: str
) -> None:
    profile = {"total_spent": spent, "order_count": orders, "rfm": rfm}
    assert priority(profile, complaint(sentiment=sentiment), Decimal(1000)) == expected


def test_the_complaint_alert_is_level_one_with_text_platform_handle_and_customer() -> None:
    text = "x" * 200
    alert = complaint_alert(with_complaints(complaint()), complaint(platform="instagram", text=text), "normal", NOW)
    assert (alert.kind, alert.profile_id, alert.raised_at) == ("complaint", "P", NOW)
    assert alert.summary == "complaint on instagram by @ann: " + "x" * 120
    assert alert.details == {
        "platform": "instagram",
        "handle": "@@ann",
        "message_id": "m-1",
        "text": text,
        "sentiment": -0.2,
        "at": AT.isoformat(),
        "priority": "normal",
        "level": 1,
        "customer": {
            "total_spent": "120.50",
            "currency": None,
            "order_count": 3,
            "open_complaints": 1,
            "open_cases": 0,
            "rfm": None,
        },
    }
    again = complaint_alert(with_complaints(), complaint(platform="instagram", text="edited"), "high", NOW)
    assert again.alert_id == alert.alert_id  # the mention is the cause, whatever else changes


def test_new_complaints_start_a_timer_one_sla_after_the_complaint_and_answered_ones_stop() -> None:
    profile = with_complaints(complaint("m-1"), complaint("m-2", sentiment=-0.9))
    timers, alerts = track_complaints({}, profile, POLICY, NOW)
    assert [a.details["message_id"] for a in alerts] == ["m-1", "m-2"]
    assert {m: (t.priority, t.level, t.due_at) for m, t in timers.items()} == {
        "m-1": ("normal", 1, AT + timedelta(seconds=600)),
        "m-2": ("high", 1, AT + timedelta(seconds=60)),
    }
    escalated = {**timers, "m-2": escalate(timers["m-2"], POLICY, NOW)[0]}
    # m-1 answered (gone from open_complaints): its timer goes; m-2 keeps its clock and level
    kept, again = track_complaints(escalated, with_complaints(complaint("m-2", sentiment=-0.9)), POLICY, NOW)
    assert list(kept) == ["m-2"] and kept["m-2"] == escalated["m-2"] and kept["m-2"].level == 2
    assert [a.alert_id for a in again] == [alerts[1].alert_id]
    assert track_complaints(kept, with_complaints(), POLICY, NOW) == ({}, [])


def test_escalation_to_level_two_then_three_then_nothing_more() -> None:
    (timer,) = track_complaints({}, with_complaints(complaint(sentiment=-0.9)), POLICY, NOW)[0].values()
    assert not timer.is_due(AT + timedelta(seconds=59)) and timer.is_due(AT + timedelta(seconds=60))
    second, alert2 = escalate(timer, POLICY, AT + timedelta(seconds=61))
    assert (alert2.kind, alert2.details["level"], alert2.details["priority"]) == ("complaint_escalated", 2, "high")
    assert alert2.details["waited_s"] == 61.0 and alert2.details["sla_s"] == 60.0
    assert alert2.summary.startswith("level 2: high complaint on twitter by @ann unanswered for 61 s (SLA 60 s)")
    assert second.level == 2 and second.due_at == AT + timedelta(seconds=120)
    third, alert3 = escalate(second, POLICY, AT + timedelta(seconds=125))
    assert alert3.details["level"] == 3 and third.level == 3 and third.due_at is None
    assert not third.is_due(AT + timedelta(days=365))
    assert len({alert2.alert_id, alert3.alert_id}) == 2
    assert escalate(timer, POLICY, AT + timedelta(seconds=99))[1].alert_id == alert2.alert_id  # per level


def test_timers_round_trip_through_json() -> None:
    (timer,) = track_complaints({}, with_complaints(complaint()), POLICY, NOW)[0].values()
    assert ComplaintTimer.from_json(timer.to_json()) == timer
    top = escalate(escalate(timer, POLICY, NOW)[0], POLICY, NOW)[0]
    assert ComplaintTimer.from_json(top.to_json()) == top


def test_still_open_rechecks_the_freshest_profile() -> None:
    (timer,) = track_complaints({}, with_complaints(complaint()), POLICY, NOW)[0].values()
    assert still_open(timer, None)
    assert still_open(timer, with_complaints(complaint()))
    assert not still_open(timer, with_complaints())  # the reply closed it


def test_next_due_is_the_earliest_level_left_to_raise() -> None:
    profile = with_complaints(complaint("m-1"), complaint("m-2", sentiment=-0.9))
    timers = track_complaints({}, profile, POLICY, NOW)[0]
    assert next_due(timers) == (AT + timedelta(seconds=60)).timestamp()  # m-2, high
    top = escalate(escalate(timers["m-2"], POLICY, NOW)[0], POLICY, NOW)[0]
    assert next_due({**timers, "m-2": top}) == (AT + timedelta(seconds=600)).timestamp()
    assert next_due({"m-2": top}) is None and next_due({}) is None


def case(case_id: str = "c-1", **kw: Any) -> dict[str, Any]:
    """An open case as the profile document has it."""
    doc = {"case_id": case_id, "channel": "phone", "category": "repair", "subject": "kettle broken"}
    return {**doc, "order_id": "o-1", "product_id": "kettle", "opened_at": AT.isoformat(), **kw}


def test_a_case_from_any_channel_is_timed_like_a_complaint_until_its_first_response() -> None:
    profile = with_complaints(complaint("m-1"), open_cases=[case("c-1"), case("c-2", channel="email", priority="low")])
    timers, alerts = track_complaints({}, profile, POLICY, NOW)
    assert {m: (t.priority, t.due_at) for m, t in timers.items()} == {
        "m-1": ("normal", AT + timedelta(seconds=600)),
        "case:c-1": ("normal", AT + timedelta(seconds=600)),  # a customer with orders, no sentiment: normal
        "case:c-2": ("low", AT + timedelta(seconds=3600)),  # the helpdesk's priority
    }
    alert = alerts[1]
    assert (alert.kind, alert.summary) == ("complaint", "phone case c-1 (repair): kettle broken")
    assert alert.details == {
        "channel": "phone", "case_id": "c-1", "category": "repair", "order_id": "o-1", "product_id": "kettle",
        "text": "kettle broken", "at": AT.isoformat(), "priority": "normal", "level": 1,
        "customer": {
            "total_spent": "120.50", "currency": None, "order_count": 3, "open_complaints": 1, "open_cases": 2,
            "rfm": None,
        },
    }  # fmt: skip
    _, escalated = escalate(timers["case:c-1"], POLICY, AT + timedelta(seconds=601))
    assert escalated.summary.startswith("level 2: normal phone case c-1 (repair) unanswered for 601 s (SLA 600 s)")
    assert ComplaintTimer.from_json(timers["case:c-1"].to_json()) == timers["case:c-1"]


def test_a_replied_case_a_case_about_a_social_message_and_notes_alone_are_not_timed() -> None:
    cases = [
        case("c-1", first_response_at=NOW.isoformat()),  # answered (a reply, or closed)
        case("c-2", channel="social", message_id="m-1"),  # its complaint's clock runs
        {"case_id": "c-3"},  # a note came before the opening
    ]
    assert awaiting(with_complaints(open_cases=cases)) == []
    (timer,) = track_complaints({}, with_complaints(open_cases=[case("c-1")]), POLICY, NOW)[0].values()
    assert still_open(timer, with_complaints(open_cases=[case("c-1")]))
    assert not still_open(timer, with_complaints(open_cases=cases))
