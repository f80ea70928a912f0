"""The shipped journeys, once switched on, behave like the notifier's alerts they are to replace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.notifier.journeys.catalog import load_journeys
from services.notifier.journeys.effects import Exited, Schedule, Send
from services.notifier.journeys.engine import on_due, on_event, on_trigger, state_key
from services.notifier.journeys.gates import Customer
from services.notifier.journeys.triggers import (
    DateTrigger,
    Occurrence,
    date_occurrence,
    event_occurrence,
    segment_change,
)
from tests.unit.notifier.journeys.fixtures import NOW, customer

SHIPPED = {j.id: j.model_copy(update={"status": "active"}) for j in load_journeys()}  # shipped paused
HOUR = timedelta(hours=1)


def test_cart_abandonment_alerts_an_hour_after_the_last_cart_change_unless_emptied() -> None:
    cart = SHIPPED["cart-abandonment"]
    added = event_occurrence("Product Added", "ev1", {"product_id": "sku-1"}, NOW)
    full = customer(cart_items=Decimal(2), cart_value=Decimal("59.90"), currency="EUR")
    state, effects = on_trigger(cart, None, added, full, NOW)
    assert effects[-1] == Schedule("P1", "cart-abandonment", NOW + HOUR) and state is not None
    _, effects = on_due(cart, state, full, NOW + HOUR)
    (alert,) = [e for e in effects if isinstance(e, Send)]
    assert (alert.kind, alert.channel, alert.internal) == ("cart_abandoned", "topic", False)
    assert alert.rendered == "cart with 2 item(s) worth 59.90 EUR abandoned"
    _, effects = on_due(cart, state, customer(cart_items=Decimal(0)), NOW + HOUR)
    assert Exited("P1", "cart-abandonment", "when: cart_items == 0") in effects
    changed = event_occurrence("Product Added", "ev2", {"product_id": "sku-2"}, NOW + 0.5 * HOUR)
    restarted, effects = on_trigger(cart, state, changed, full, NOW + 0.5 * HOUR)
    assert Exited("P1", "cart-abandonment", "restarted") in effects
    assert restarted is not None and restarted.due_at == NOW + 1.5 * HOUR


def test_complaint_sla_alerts_at_once_escalates_and_stops_on_the_reply() -> None:
    sla = SHIPPED["complaint-sla"]
    props = {"message_id": "m1", "platform": "twitter", "handle": "angry", "text": "Late again", "complaint": True}
    mention = event_occurrence("social.mention", "ev1", props, NOW)
    buyer = customer(order_count=Decimal(1))
    state, effects = on_trigger(sla, None, mention, buyer, NOW)
    assert [(s.kind, s.rendered) for s in effects if isinstance(s, Send)] == [
        ("complaint", "complaint on twitter by @angry: Late again")
    ]
    assert state is not None and (state.next_step, state.due_at) == ("normal-level-2", NOW + HOUR)
    state, effects = on_due(sla, state, buyer, NOW + HOUR)
    assert [s.rendered for s in effects if isinstance(s, Send)] == [
        "level 2: twitter complaint by @angry unanswered: Late again"
    ]
    reply = event_occurrence("support.complaint_responded", "ev2", {"message_id": "m1", "agent": "a"}, NOW + 2 * HOUR)
    other = event_occurrence("support.complaint_responded", "ev3", {"message_id": "m2", "agent": "a"}, NOW + 2 * HOUR)
    assert state is not None and on_event(sla, state, other, NOW)[1] == []
    answered, effects = on_event(sla, state, reply, NOW)
    assert answered is not None and answered.ended == "event: support.complaint_responded"
    praise = event_occurrence("social.mention", "ev4", {**props, "complaint": False, "sentiment": 0.9}, NOW)
    assert on_trigger(sla, None, praise, buyer, NOW) == (None, [])


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
