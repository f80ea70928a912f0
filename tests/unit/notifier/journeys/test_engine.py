"""The journey engine with an injected clock: entry, waits, branches, sends and what holds or stops them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.notifier.journeys.effects import Converted, Count, Effect, Exited, Schedule, Send, UpdateProfile
from services.notifier.journeys.engine import on_due, on_event, on_trigger
from services.notifier.journeys.state import Enrollment
from services.notifier.journeys.triggers import segment_change
from services.notifier.rules import alert_id
from tests.unit.notifier.journeys.fixtures import NOW, customer, journey, order

HOUR = timedelta(hours=1)
MAIL = {"name": "mail", "send": "email", "consent": "email", "template": "Hi {{ profile.city }}"}
WAIT_THEN_MAIL = [{"name": "wait", "wait": "1h"}, MAIL]


def mail_id(occurrence: str = "e1", version: int = 1, step: str = "mail") -> str:
    return alert_id("journey", "j", str(version), "P1", occurrence, step)


def sent(effects: list[Effect]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send)]


def counts(effects: list[Effect]) -> list[tuple[str, str, Decimal]]:
    return [(c.step, c.counter, c.amount) for c in effects if isinstance(c, Count)]


def test_an_event_enters_and_a_zero_wait_journey_sends_at_once() -> None:
    state, effects = on_trigger(journey(), None, order(), customer(), NOW)
    assert effects == [
        Count("j", "mail", "entered"),
        Send(mail_id(), "j", "mail", "email", "journey", "P1", "Hi Bonn", internal=False, capped=True),
        Count("j", "mail", "sent"),
        Exited("P1", "j", "completed"),
        Count("j", "mail", "exited: completed"),
    ]
    assert state is not None and (state.ended, state.first_sent_at, state.last_sent) == ("completed", NOW, "mail")


def test_the_same_occurrence_enters_once_and_a_replay_from_scratch_gives_the_same_effects() -> None:
    state, effects = on_trigger(journey(), None, order(), customer(), NOW)
    assert on_trigger(journey(), state, order(), customer(), NOW + HOUR) == (state, [])
    assert on_trigger(journey(), None, order(), customer(), NOW) == (state, effects)


def test_message_ids_depend_on_journey_version_profile_occurrence_and_step_only() -> None:
    first = sent(on_trigger(journey(), None, order("e1"), customer(), NOW)[1])[0].message_id
    later = sent(on_trigger(journey(), None, order("e1"), customer(city="Köln"), NOW + HOUR)[1])[0].message_id
    other = sent(on_trigger(journey(), None, order("e2"), customer(), NOW)[1])[0].message_id
    newer = sent(on_trigger(journey(version=2), None, order("e1"), customer(), NOW)[1])[0].message_id
    assert first == later == mail_id("e1") and first.startswith("journey:")
    assert len({first, other, newer}) == 3 and newer == mail_id("e1", version=2)


def test_an_event_trigger_with_a_condition_on_its_properties() -> None:
    j = journey(trigger={"event": "Order Completed", "where": "total >= 100"})
    assert on_trigger(j, None, order(total=50), customer(), NOW) == (None, [])
    assert sent(on_trigger(j, None, order(total=150), customer(), NOW)[1])
    assert on_trigger(j, None, order(), customer(), NOW) == (None, [])  # no total: false, not a crash


def test_a_segment_trigger_enters_on_the_change_it_names() -> None:
    j = journey(trigger={"segment": "vip", "change": "entered"})
    assert on_trigger(j, None, segment_change("vip", "exited", NOW), customer(), NOW) == (None, [])
    assert on_trigger(j, None, segment_change("other", "entered", NOW), customer(), NOW) == (None, [])
    state, _ = on_trigger(j, None, segment_change("vip", "entered", NOW), customer(), NOW)
    assert state is not None and state.occurrence == f"segment:vip:entered:{NOW.isoformat()}"


def test_a_wait_schedules_the_next_step_and_runs_it_when_due() -> None:
    j = journey(steps=WAIT_THEN_MAIL)
    state, effects = on_trigger(j, None, order(), customer(), NOW)
    assert effects == [Count("j", "wait", "entered"), Count("j", "wait", "waiting"), Schedule("P1", "j", NOW + HOUR)]
    assert state is not None and (state.next_step, state.due_at, state.waiting_in) == ("mail", NOW + HOUR, "wait")
    assert on_due(j, state, customer(), NOW + HOUR - timedelta(seconds=1)) == (state, [])
    after, effects = on_due(j, state, customer(), NOW + HOUR)
    assert counts(effects)[:2] == [("wait", "waiting", Decimal(-1)), ("mail", "sent", Decimal(1))]
    assert sent(effects)[0].message_id == mail_id() and after is not None and after.ended == "completed"
    assert on_due(j, after, customer(), NOW + 2 * HOUR) == (after, [])  # over: a late due call does nothing


def test_a_wait_until_a_time_of_day_in_the_customers_zone() -> None:
    j = journey(steps=[{"name": "morning", "until": "09:00"}, MAIL])
    _, effects = on_trigger(j, None, order(), customer(), NOW)  # 14:00 in Berlin
    assert effects[-1] == Schedule("P1", "j", datetime(2026, 6, 2, 7, 0, tzinfo=UTC))
    _, effects = on_trigger(j, None, order(), customer(timezone="America/New_York"), NOW)  # 08:00 there
    assert effects[-1] == Schedule("P1", "j", datetime(2026, 6, 1, 13, 0, tzinfo=UTC))
    spring = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)  # the night Berlin moves to summer time
    _, effects = on_trigger(j, None, order(at=spring), customer(), spring)
    assert effects[-1] == Schedule("P1", "j", datetime(2026, 3, 29, 7, 0, tzinfo=UTC))


def test_a_branch_goes_where_its_condition_says() -> None:
    steps = [
        {"name": "big", "branch": "total_spent >= 100", "then": "vip"},
        {**MAIL, "template": "regular"},
        {"name": "done", "exit": "regular_sent"},
        {**MAIL, "name": "vip", "template": "vip"},
    ]
    j = journey(steps=steps)
    _, effects = on_trigger(j, None, order(), customer(total_spent=Decimal(150)), NOW)
    assert [s.rendered for s in sent(effects)] == ["vip"] and ("big", "branch: then", 1) in counts(effects)
    state, effects = on_trigger(j, None, order(), customer(total_spent=Decimal(10)), NOW)
    assert [s.rendered for s in sent(effects)] == ["regular"]
    assert state is not None and state.ended == "regular_sent" and Exited("P1", "j", "regular_sent") in effects


def test_exit_criteria_are_checked_again_before_every_step() -> None:
    j = journey(steps=WAIT_THEN_MAIL, exit={"when": ["order_count > 1"], "ordered_since_entry": True})
    state, _ = on_trigger(j, None, order(), customer(order_count=1, last_order_at=NOW), NOW)
    assert state is not None
    after, effects = on_due(j, state, customer(order_count=2), NOW + HOUR)
    assert sent(effects) == [] and after is not None and after.ended == "when: order_count > 1"
    assert counts(effects) == [("wait", "waiting", -1), ("mail", "exited: when: order_count > 1", 1)]
    _, effects = on_due(j, state, customer(order_count=1, last_order_at=NOW + timedelta(minutes=5)), NOW + HOUR)
    assert Exited("P1", "j", "ordered") in effects and sent(effects) == []
    _, effects = on_due(j, state, customer(order_count=1, last_order_at=NOW), NOW + HOUR)
    assert len(sent(effects)) == 1  # the triggering order itself is not one "since entry"


def test_leaving_the_trigger_segment_and_withdrawn_consent_end_the_journey() -> None:
    j = journey(
        trigger={"segment": "vip"}, steps=WAIT_THEN_MAIL, exit={"left_segment": True, "consent_withdrawn": True}
    )
    state, _ = on_trigger(j, None, segment_change("vip", "entered", NOW), customer(segments=frozenset({"vip"})), NOW)
    assert state is not None
    left, _ = on_due(j, state, customer(), NOW + HOUR)
    withdrawn, _ = on_due(j, state, customer(segments=frozenset({"vip"}), consent={"email": False}), NOW + HOUR)
    assert (left and left.ended, withdrawn and withdrawn.ended) == ("left_segment", "consent_withdrawn")


def test_consent_is_per_channel() -> None:
    sms = journey(steps=[{**MAIL, "send": "webhook", "consent": "sms"}])
    _, effects = on_trigger(sms, None, order(), customer(), NOW)  # e-mail granted, SMS not
    assert sent(effects) == [] and ("mail", "skipped: consent", 1) in counts(effects)
    _, effects = on_trigger(sms, None, order(), customer(consent={"sms": True}), NOW)
    assert len(sent(effects)) == 1
    internal = journey(steps=[{**MAIL, "without_consent": "internal"}])
    (message,) = sent(on_trigger(internal, None, order(), customer(consent={}), NOW)[1])
    assert (message.internal, message.capped) == (True, False)


QUIET = {"quiet_hours": {"start": "21:00", "end": "08:00"}, "timezone": "UTC"}


def test_quiet_hours_hold_a_message_until_they_end() -> None:
    late = datetime(2026, 6, 1, 20, 30, tzinfo=UTC)  # 22:30 in Berlin
    j = journey(policy=QUIET)
    state, effects = on_trigger(j, None, order(at=late), customer(), late)
    morning = datetime(2026, 6, 2, 6, 0, tzinfo=UTC)  # 08:00 in Berlin
    assert sent(effects) == [] and effects[-1] == Schedule("P1", "j", morning)
    assert state is not None and (state.next_step, state.waiting_in, state.due_at) == ("mail", "mail", morning)
    after, effects = on_due(j, state, customer(), morning)
    assert [s.message_id for s in sent(effects)] == [mail_id()] and after is not None and after.ended == "completed"
    unthrottled = journey(policy=QUIET, steps=[{**MAIL, "throttled": False}])
    assert len(sent(on_trigger(unthrottled, None, order(at=late), customer(), late)[1])) == 1


def test_the_frequency_cap_counts_messages_across_journeys_and_within_a_run() -> None:
    cap = {"cap": {"messages": 2, "per": "7d"}}
    j = journey(policy=cap)
    full = customer(sent=(NOW - timedelta(days=1), NOW - timedelta(days=2)))
    _, effects = on_trigger(j, None, order(), full, NOW)
    assert sent(effects) == [] and ("mail", "skipped: cap", 1) in counts(effects)
    aged = customer(sent=(NOW - timedelta(days=8), NOW - timedelta(days=1)))
    assert len(sent(on_trigger(j, None, order(), aged, NOW)[1])) == 1
    two = journey(policy={"cap": {"messages": 1, "per": "1d"}}, steps=[MAIL, {**MAIL, "name": "again"}])
    assert [s.step for s in sent(on_trigger(two, None, order(), customer(), NOW)[1])] == ["mail"]


def ended(at: datetime = NOW, occurrence: str = "e1") -> Enrollment:
    return Enrollment("j", 1, "P1", occurrence, at, {}, ended="completed")


def test_reentry_never_after_a_duration_restart_and_parallel() -> None:
    assert on_trigger(journey(), ended(), order("e2"), customer(), NOW + HOUR)[1] == []
    after_30d = journey(reentry="30d")
    assert on_trigger(after_30d, ended(), order("e2"), customer(), NOW + timedelta(days=29))[1] == []
    assert sent(on_trigger(after_30d, ended(), order("e2"), customer(), NOW + timedelta(days=30))[1])
    waiting = on_trigger(journey(steps=WAIT_THEN_MAIL, reentry="30d"), None, order("e1"), customer(), NOW)[0]
    assert on_trigger(journey(steps=WAIT_THEN_MAIL, reentry="30d"), waiting, order("e2"), customer(), NOW)[1] == []
    restart = journey(steps=WAIT_THEN_MAIL, reentry="restart")
    active = on_trigger(restart, None, order("e1"), customer(), NOW)[0]
    state, effects = on_trigger(restart, active, order("e2"), customer(), NOW + 0.5 * HOUR)
    assert effects[:3] == [Exited("P1", "j", "restarted"), Count("j", "wait", "waiting", Decimal(-1)),
                           Count("j", "mail", "exited: restarted")]  # fmt: skip
    assert state is not None and (state.occurrence, state.due_at) == ("e2", NOW + 1.5 * HOUR)
    parallel = journey(steps=WAIT_THEN_MAIL, reentry="parallel")
    other = on_trigger(parallel, None, order("e1"), customer(), NOW)[0]
    state, effects = on_trigger(parallel, other, order("e2"), customer(), NOW)
    assert state is not None and state.occurrence == "e2" and not any(isinstance(e, Exited) for e in effects)


def test_a_goal_attributes_the_conversion_and_revenue_to_the_last_message_once() -> None:
    j = journey(goal={"event": "Order Completed", "within": "7d"})
    state, _ = on_trigger(j, None, order("e1"), customer(), NOW)
    assert state is not None
    converted, effects = on_event(j, state, order("e9", at=NOW + timedelta(days=2), total="42.50"), NOW)
    assert effects == [
        Converted("P1", "j", "mail", "e9", Decimal("42.50")),
        Count("j", "mail", "converted"),
        Count("j", "mail", "revenue", Decimal("42.50")),
    ]
    assert on_event(j, converted, order("e10", at=NOW + timedelta(days=3)), NOW) == (converted, [])  # once
    assert on_event(j, state, order("e9", at=NOW + timedelta(days=8)), NOW)[1] == []  # outside the window
    unsent = Enrollment("j", 1, "P1", "e1", NOW, {}, next_step="mail", due_at=NOW + HOUR)
    assert on_event(j, unsent, order("e9", at=NOW), NOW)[1] == []  # nothing sent yet: nothing to attribute


def test_an_update_step_has_a_deterministic_id() -> None:
    j = journey(steps=[{"name": "tag", "update": "tag", "tag": "vip"}])
    (update,) = [e for e in on_trigger(j, None, order(), customer(), NOW)[1] if isinstance(e, UpdateProfile)]
    assert update == UpdateProfile(alert_id("journey_update", "j", "1", "P1", "e1", "tag"), "P1", "j", tag="vip")


def test_a_paused_journey_neither_enters_nor_runs() -> None:
    j = journey(steps=WAIT_THEN_MAIL)
    state, _ = on_trigger(j, None, order(), customer(), NOW)
    assert state is not None
    paused = journey(steps=WAIT_THEN_MAIL, status="paused")
    assert on_trigger(paused, None, order("e2"), customer(), NOW) == (None, [])
    assert on_due(paused, state, customer(), NOW + HOUR) == (state, [])
    assert sent(on_due(j, state, customer(), NOW + 2 * HOUR)[1])  # resumed: the wait is over, it runs on


def test_a_new_version_without_the_next_step_ends_the_enrollment() -> None:
    state, _ = on_trigger(journey(steps=WAIT_THEN_MAIL), None, order(), customer(), NOW)
    assert state is not None
    v2 = journey(version=2, steps=[{"name": "wait", "wait": "1h"}, {**MAIL, "name": "hello"}])
    after, effects = on_due(v2, state, customer(), NOW + HOUR)
    assert after is not None and after.ended == "step_removed" and sent(effects) == []


def test_the_enrollment_state_round_trips_through_json() -> None:
    j = journey(steps=WAIT_THEN_MAIL, goal={"event": "Order Completed", "within": "7d"})
    waiting, _ = on_trigger(j, None, order(total="12.00"), customer(), NOW)
    assert waiting is not None
    done, _ = on_due(j, waiting, customer(), NOW + HOUR)
    for state in (waiting, done):
        assert state is not None
        doc: Any = json.loads(json.dumps(state.to_json()))
        assert Enrollment.from_json(doc) == state
    assert done is not None and done.to_json()["first_sent_at"] == (NOW + HOUR).isoformat()


def test_a_template_that_fails_at_render_time_skips_its_message() -> None:
    for template in ("{{ 1 / profile.order_count }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}"):
        state, effects = on_trigger(journey(steps=[{**MAIL, "template": template}]), None, order(), customer(), NOW)
        assert sent(effects) == [] and ("mail", "skipped: template", 1) in counts(effects)
        assert state is not None and state.ended == "completed"


def test_templates_read_the_profile_and_the_trigger() -> None:
    template = "{{ trigger.name }} {{ trigger.data.order_id }} for {{ profile.city }}, {{ profile.total_spent }}"
    j = journey(steps=[{**MAIL, "template": template}])
    (message,) = sent(on_trigger(j, None, order(), customer(total_spent=Decimal("12.50")), NOW)[1])
    assert message.rendered == "Order Completed o1 for Bonn, 12.50"


def test_set_values_feed_a_computed_wait_and_a_value_of_the_wrong_type_ends_the_enrollment() -> None:
    steps = [{"name": "plan", "set": {"mins": "trigger.data.mins", "wait": "vars.mins ~ 'm'"}}]
    steps += [{"name": "pause", "wait": "{{ vars.wait }}"}, MAIL]
    state, _ = on_trigger(journey(steps=steps), None, order(mins=15), customer(), NOW)
    assert state is not None and state.vars == {"mins": 15, "wait": "15m"} and state.due_at == NOW + HOUR / 4
    state, effects = on_trigger(journey(steps=steps), None, order(mins=[1]), customer(), NOW)
    assert state is not None and state.ended == "failed" and not sent(effects)


def test_a_wait_counted_from_the_trigger_that_has_passed_ends_at_once_on_the_customer_read_again() -> None:
    steps = [{"name": "pause", "wait": "1h", "since": "trigger"}, MAIL]
    state, effects = on_trigger(journey(steps=steps), None, order(at=NOW - 2 * HOUR), customer(), NOW)
    assert not sent(effects) and state is not None and state.due_at == NOW  # the due path reads the customer
    state, effects = on_due(journey(steps=steps), state, customer(city="Köln"), NOW)
    assert [s.rendered for s in sent(effects)] == ["Hi Köln"] and state is not None and state.ended == "completed"
