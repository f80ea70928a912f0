"""The shipped journeys: the alert journeys behave as the notifier's built-in alerts did; the examples work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from crmhub.core.conditions.fields import profile_view
from services.notifier.journeys.catalog import load_journeys
from services.notifier.journeys.definition import Journey
from services.notifier.journeys.effects import Effect, Exited, Schedule, Send
from services.notifier.journeys.engine import on_due, on_trigger, state_key
from services.notifier.journeys.gates import Customer
from services.notifier.journeys.outputs import to_alert
from services.notifier.journeys.state import Enrollment
from services.notifier.journeys.triggers import (
    DateTrigger,
    ItemsTrigger,
    Occurrence,
    ProfileTrigger,
    date_occurrence,
    profile_occurrences,
    segment_change,
)
from tests.unit.notifier.journeys.fixtures import NOW, customer

SHIPPED = {j.id: j.model_copy(update={"status": "active"}) for j in load_journeys()}  # some shipped paused
HOUR = timedelta(hours=1)
RFM_555 = {"recency": 5, "frequency": 5, "monetary": 5, "score": "555", "computed_at": NOW.isoformat()}
GRANTED = {"granted": True, "at": NOW.isoformat(), "source": "web"}


def stored(**fields: Any) -> dict[str, Any]:
    """A profile as published (JSON), consented to e-mail with an address, changed by ``fields``."""
    doc = {
        "profile_id": "P1",
        "identifiers": {"email": ["ann@example.com"]},
        "consent": {"email": {"marketing": GRANTED}},
    }
    return {**doc, **fields}


def cart(at: datetime = NOW, quantity: int = 2, **fields: Any) -> dict[str, Any]:
    items = [{"product_id": "p1", "price": "29.95", "quantity": quantity}] if quantity else []
    return stored(cart={"items": items, "value": "59.90", "updated_at": at.isoformat()}, currency="EUR", **fields)


def enter(journey: Journey, doc: dict[str, Any], now: datetime = NOW) -> tuple[Enrollment | None, list[Effect]]:
    """What the runner does with a profile change: the trigger's occurrence in it enters the customer."""
    assert isinstance(journey.trigger, ProfileTrigger | ItemsTrigger)
    (occ,) = profile_occurrences(journey.trigger, profile_view(doc), doc, now)
    return on_trigger(journey, None, occ, as_customer(doc), now)


def as_customer(doc: dict[str, Any], segments: frozenset[str] = frozenset()) -> Customer:
    return Customer(profile_view(doc), segments, (), doc)


def sends(effects: list[Effect]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send)]


def test_cart_abandonment_alerts_an_hour_after_the_cart_s_last_change_with_what_was_left() -> None:
    journey = SHIPPED["cart-abandonment"]
    state, effects = enter(journey, cart(), NOW + 0.25 * HOUR)  # read a quarter of an hour late
    assert effects[-1] == Schedule("P1", "cart-abandonment", NOW + HOUR) and state is not None  # from the change
    _, effects = on_due(journey, state, as_customer(cart(), frozenset({"vip"})), NOW + HOUR)
    (alert,) = sends(effects)
    assert (alert.kind, alert.channel, alert.internal) == ("cart_abandoned", "alert", False)
    assert to_alert(alert, NOW).channel is None  # routed as the notifier's alerts: every sink of its kind
    assert alert.rendered == "cart with 2 item(s) worth 59.90 EUR abandoned"
    assert alert.details["contact"] == {"channel": "email", "address": "ann@example.com"}
    assert (alert.details["item_count"], alert.details["value"], alert.details["since"]) == (
        2,
        "59.90",
        NOW.isoformat(),
    )
    assert [i["product_id"] for i in alert.details["items"]] == ["p1"] and alert.details["segments"] == ["vip"]


def test_without_consent_the_cart_alert_is_internal() -> None:
    journey = SHIPPED["cart-abandonment"]
    state, _ = enter(journey, cart(consent={}))
    assert state is not None
    (alert,) = sends(on_due(journey, state, as_customer(cart(consent={})), NOW + HOUR)[1])
    assert alert.internal and alert.details["contact"] is None
    assert alert.rendered.endswith("abandoned (no consent to contact: internal)")


def test_a_cart_changed_emptied_or_bought_since_raises_nothing_and_a_change_restarts_the_wait() -> None:
    journey = SHIPPED["cart-abandonment"]
    state, _ = enter(journey, cart())
    assert state is not None
    for since in (cart(at=NOW + 0.5 * HOUR), cart(quantity=0), cart(quantity=0, last_order_at=NOW.isoformat())):
        _, effects = on_due(journey, state, as_customer(since), NOW + HOUR)
        assert sends(effects) == [] and Exited("P1", "cart-abandonment", "left_trigger") in effects
    late, effects = enter(journey, cart(), NOW + 2 * HOUR)  # read late: the wait is over, but it was bought since
    assert sends(effects) == [] and late is not None and late.due_at == NOW + 2 * HOUR
    _, effects = on_due(journey, late, as_customer(cart(quantity=0)), NOW + 2 * HOUR)
    assert sends(effects) == [] and Exited("P1", "cart-abandonment", "left_trigger") in effects
    changed = cart(at=NOW + 0.5 * HOUR)
    (occ,) = profile_occurrences(journey.trigger, profile_view(changed), changed, NOW + 0.5 * HOUR)  # type: ignore[arg-type]
    restarted, effects = on_trigger(journey, state, occ, as_customer(changed), NOW + 0.5 * HOUR)
    assert Exited("P1", "cart-abandonment", "restarted") in effects
    assert restarted is not None and restarted.due_at == NOW + 1.5 * HOUR


def test_browse_abandonment_needs_views_an_empty_cart_and_no_order_since_the_last_view() -> None:
    journey = SHIPPED["browse-abandonment"]
    views = [{"product_id": p, "price": "80.00", "at": NOW.isoformat()} for p in ("p3", "p4")]
    browsed = stored(recent_views=views, consent={})
    state, _ = enter(journey, browsed)
    assert state is not None and state.due_at == NOW + 2 * HOUR
    (alert,) = sends(on_due(journey, state, as_customer(browsed), NOW + 2 * HOUR)[1])
    assert (alert.kind, alert.internal) == ("browse_abandoned", True)
    assert [v["product_id"] for v in alert.details["viewed"]] == ["p3", "p4"]
    assert alert.rendered == "2 product(s) viewed, nothing bought (no consent to contact: internal)"
    for no in ({**cart(), "recent_views": views}, {**browsed, "last_order_at": NOW.isoformat()}):
        assert profile_occurrences(journey.trigger, profile_view(no), no, NOW) == []  # type: ignore[arg-type]


def complaining(sentiment: float, **fields: Any) -> dict[str, Any]:
    said = {"message_id": "m1", "platform": "twitter", "handle": "@angry", "text": "Late again", "at": NOW.isoformat()}
    return stored(open_complaints=[{**said, "sentiment": sentiment}], **fields)


def test_complaint_sla_alerts_at_once_escalates_one_and_two_slas_after_and_stops_on_the_reply() -> None:
    sla = SHIPPED["complaint-sla"]
    buyer = complaining(-0.6, order_count=1, total_spent="50.00")  # value 1 + mood 1: normal, one hour
    state, effects = enter(sla, buyer)
    (first,) = sends(effects)
    assert (first.kind, first.rendered) == ("complaint", "complaint on twitter by @angry: Late again")
    assert (first.details["priority"], first.details["level"], first.details["message_id"]) == ("normal", 1, "m1")
    assert first.details["customer"]["open_complaints"] == 1
    assert state is not None and state.due_at == NOW + HOUR
    state, effects = on_due(sla, state, as_customer(buyer), NOW + HOUR)
    (second,) = sends(effects)
    assert (
        second.rendered
        == "level 2: normal complaint on twitter by @angry unanswered for 3600 s (SLA 3600 s): Late again"
    )
    assert (second.kind, second.details["level"], second.details["sla_s"]) == ("complaint_escalated", 2, 3600)
    assert state is not None and state.due_at == NOW + 2 * HOUR
    answered, effects = on_due(sla, state, as_customer(stored(order_count=1)), NOW + 2 * HOUR)
    assert sends(effects) == [] and answered is not None and answered.ended == "left_trigger"
    _, effects = on_due(sla, state, as_customer(buyer), NOW + 2 * HOUR)
    assert [s.details["level"] for s in sends(effects)] == [3] and Exited("P1", "complaint-sla", "completed") in effects


@pytest.mark.parametrize(
    ("fields", "priority"),
    [
        ({"sentiment": -0.9, "total_spent": "1000"}, "high"),  # 2 + 2
        ({"sentiment": -0.9, "order_count": 1}, "high"),  # 1 + 2
        ({"sentiment": -0.9}, "normal"),  # 0 + 2
        ({"sentiment": -0.2, "rfm": RFM_555}, "normal"),  # 2 + 0
        ({"sentiment": -0.2}, "low"),
    ],
)
def test_the_complaint_priority_adds_the_customer_s_value_and_the_sentiment(
    fields: dict[str, Any], priority: str
) -> None:
    sentiment = fields.pop("sentiment")
    (alert,) = sends(enter(SHIPPED["complaint-sla"], complaining(sentiment, **fields))[1])
    assert alert.details["priority"] == priority


def test_a_case_is_timed_from_its_opening_at_the_helpdesk_s_priority_unless_about_a_complaint() -> None:
    sla = SHIPPED["case-sla"]
    opened = NOW - 2 * timedelta(seconds=900) - timedelta(minutes=1)  # high: both escalations past due
    case = {"case_id": "c1", "channel": "phone", "category": "repair", "priority": "high", "subject": "Kettle broke"}
    doc = stored(open_cases=[{**case, "opened_at": opened.isoformat(), "first_response_at": None}])
    state, effects = enter(sla, doc)
    for _ in range(2):  # each level past due already: raised when the customer is read again, at once
        assert state is not None and state.due_at == NOW
        state, more = on_due(sla, state, as_customer(doc), NOW)
        effects += more
    assert [(s.kind, s.details["level"], s.details["priority"]) for s in sends(effects)] == [
        ("complaint", 1, "high"), ("complaint_escalated", 2, "high"), ("complaint_escalated", 3, "high")
    ]  # fmt: skip
    first, second, _ = sends(effects)
    assert first.rendered == "phone case c1 (repair): Kettle broke" and first.details["case_id"] == "c1"
    assert second.rendered == "level 2: high phone case c1 (repair) unanswered for 1860 s (SLA 900 s): Kettle broke"
    about = stored(open_cases=[{**case, "opened_at": opened.isoformat(), "message_id": "m1"}])
    responded = stored(open_cases=[{**case, "opened_at": opened.isoformat(), "first_response_at": NOW.isoformat()}])
    for not_timed in (about, responded):
        assert profile_occurrences(sla.trigger, {}, not_timed, NOW) == []  # type: ignore[arg-type]


def test_invoice_overdue_alerts_the_team_once_on_entry_unless_paid_meanwhile() -> None:
    overdue = SHIPPED["invoice-overdue"]
    due = NOW - timedelta(days=1)
    owing = customer(
        segments=frozenset({"invoice_overdue"}),
        consent={},  # a message to the team needs no consent of the customer's
        open_invoice_count=1,
        open_invoice_amount=Decimal("120.00"),
        open_invoice_currency="EUR",
        oldest_invoice_due_at=due,
    )
    entered = segment_change("invoice_overdue", "entered", NOW)
    state, effects = on_trigger(overdue, None, entered, owing, NOW)
    (alert,) = [e for e in effects if isinstance(e, Send)]
    assert (alert.kind, alert.channel, alert.internal) == ("invoice_overdue", "topic", False)
    assert alert.rendered == "1 open invoice(s), 120.00 EUR outstanding, the oldest due 2026-05-31"
    assert state is not None and on_trigger(overdue, state, entered, owing, NOW) == (state, [])  # once
    paid, effects = on_trigger(overdue, None, entered, customer(), NOW)  # read late: it left the segment
    assert paid is not None and paid.ended == "left_segment" and not any(isinstance(e, Send) for e in effects)


def _renewal_term(expires_at: datetime, status: str = "active") -> tuple[Customer, Occurrence]:
    """A member of ``status`` whose term ends at ``expires_at``, and the renewal reminder's occurrence."""
    renewal = SHIPPED["membership-renewal"]
    assert isinstance(renewal.trigger, DateTrigger)
    fee = {"membership_fee": Decimal("60.00"), "membership_currency": "EUR", "membership_plan": "standard"}
    member = customer(membership_status=status, membership_expires_at=expires_at, **fee)
    occ = date_occurrence(renewal.trigger, member.view, member.zone(renewal.policy), NOW)
    assert occ is not None
    return member, occ


def test_membership_renewal_reminds_30_days_before_expiry_once_per_term() -> None:
    renewal = SHIPPED["membership-renewal"]
    member, occ = _renewal_term(NOW + timedelta(days=30))  # 1 July: due 1 June, 09:00 in Berlin
    assert occ.at == datetime(2026, 6, 1, 7, tzinfo=UTC)
    state, effects = on_trigger(renewal, None, occ, member, NOW)
    (reminder,) = [e for e in effects if isinstance(e, Send)]
    assert reminder.rendered == "Your standard membership ends on 2026-07-01: renew it now for 60.00 EUR."
    assert on_trigger(renewal, state, occ, member, NOW) == (state, [])  # read again (replay, restart): once
    renewed, next_term = _renewal_term(NOW + timedelta(days=395))  # renewed: the next term's reminder, a year on
    assert state_key(renewal, "P1", next_term) != state_key(renewal, "P1", occ)
    assert on_trigger(renewal, None, next_term, renewed, NOW) == (None, [Schedule("P1", renewal.id, next_term.at)])
    _, effects = on_trigger(renewal, None, next_term, renewed, next_term.at + HOUR)
    assert [e.rendered for e in effects if isinstance(e, Send)] == [
        "Your standard membership ends on 2027-07-01: renew it now for 60.00 EUR."
    ]
    cancelled, occ = _renewal_term(NOW + timedelta(days=30), status="cancelled")
    _, effects = on_trigger(renewal, None, occ, cancelled, NOW)
    assert not any(isinstance(e, Send) for e in effects)
    assert Exited("P1", "membership-renewal", 'when: membership_status != "active"') in effects


def test_engaged_members_are_invited_in_the_morning_unless_they_registered_meanwhile() -> None:
    invite = SHIPPED["member-event-invite"]
    engaged = customer(segments=frozenset({"engaged_members_unregistered"}), events_attended=3)
    entered = segment_change("engaged_members_unregistered", "entered", NOW)
    state, _ = on_trigger(invite, None, entered, engaged, NOW)
    morning = datetime(2026, 6, 2, 8, tzinfo=UTC)  # 10:00 in Berlin
    assert state is not None and state.due_at == morning
    _, effects = on_due(invite, state, engaged, morning)
    assert [e.rendered for e in effects if isinstance(e, Send)] == [
        "You came to 3 of our events: the next one is open for registration."
    ]
    _, effects = on_due(invite, state, customer(events_attended=3), morning)  # registered: left the segment
    assert not any(isinstance(e, Send) for e in effects)
