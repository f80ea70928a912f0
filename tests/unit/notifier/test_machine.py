"""The notifier's state machine on plain values: what a profile change sets, clears and raises, and what
due timers fire, re-checked against the freshest profile, with a testing clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.notifier.machine import ClearTimer, Effect, Fresh, RaiseAlert, Rules, SetTimer, newer, on_due, on_profile
from services.notifier.view import ProfileDoc
from tests.unit.notifier.fixtures import CART_AT, EMPTY, HOUR, RULES, complaining, emptied, with_cart


def alerts(effects: list[Effect]) -> list[tuple[str, Any]]:
    return [(e.alert.kind, e.alert.details.get("level")) for e in effects if isinstance(e, RaiseAlert)]


def test_a_cart_sets_a_wait_due_its_delay_after_the_last_change() -> None:
    state, effects = on_profile(RULES, EMPTY, with_cart(), CART_AT)
    wait = state.waits["cart_abandoned"]
    assert effects == [SetTimer(wait)]
    assert wait.version == 1 and not wait.fired and wait.due == (CART_AT + HOUR).timestamp()
    assert state.complaints is None and list(state.waits) == ["cart_abandoned"]


def test_the_same_cart_again_writes_nothing_a_changed_one_restarts_the_wait_an_emptied_one_cancels_it() -> None:
    state, _ = on_profile(RULES, EMPTY, with_cart(), CART_AT)
    assert on_profile(RULES, state, with_cart(version=2), CART_AT) == (state, [])
    later = CART_AT + timedelta(minutes=10)
    changed, effects = on_profile(RULES, state, with_cart(later, version=3), later)
    assert effects == [SetTimer(changed.waits["cart_abandoned"])]
    assert changed.waits["cart_abandoned"].due == (later + HOUR).timestamp()
    cancelled, effects = on_profile(RULES, changed, emptied(4), later)
    assert effects == [ClearTimer("abandonment", "cart_abandoned:P")] and cancelled == EMPTY


def test_views_with_nothing_in_the_cart_set_a_browse_wait_unless_browse_abandonment_is_off() -> None:
    viewed: ProfileDoc = {"profile_id": "P", "recent_views": [{"product_id": "p-9", "at": CART_AT.isoformat()}]}
    state, effects = on_profile(RULES, EMPTY, viewed, CART_AT)
    assert effects == [SetTimer(state.waits["browse_abandoned"])]
    assert state.waits["browse_abandoned"].due == (CART_AT + 2 * HOUR).timestamp()
    carts_only = Rules({"cart_abandoned": HOUR}, RULES.sla, HOUR)
    assert on_profile(carts_only, EMPTY, viewed, CART_AT) == (EMPTY, [])
    # a browse wait left from before browse abandonment was switched off: kept by changes, dropped when due
    assert on_profile(carts_only, state, viewed, CART_AT) == (state, [])
    assert on_due(carts_only, state, Fresh(), CART_AT) == (EMPTY, [ClearTimer("abandonment", "browse_abandoned:P")])


def test_a_wait_fires_once_when_due_alert_first_then_the_fired_mark() -> None:
    state, _ = on_profile(RULES, EMPTY, with_cart(), CART_AT)
    due = CART_AT + HOUR
    assert on_due(RULES, state, Fresh(), due - timedelta(seconds=1)) == (state, [])  # not early
    fired, effects = on_due(RULES, state, Fresh(segments=("vip",)), due)
    (raised, mark) = effects
    assert isinstance(raised, RaiseAlert) and mark == SetTimer(fired.waits["cart_abandoned"])
    alert = raised.alert
    assert (alert.kind, alert.profile_id, alert.raised_at) == ("cart_abandoned", "P", due)
    assert alert.details["segments"] == ["vip"] and alert.details["since"] == CART_AT.isoformat()
    assert fired.waits["cart_abandoned"].fired and fired.waits["cart_abandoned"].due is None
    assert on_due(RULES, fired, Fresh(), due + HOUR) == (fired, [])  # one alert per wait


def test_the_cancel_condition_is_rechecked_on_a_fresh_profile_at_least_as_new_as_the_wait() -> None:
    state, _ = on_profile(RULES, EMPTY, with_cart(version=5), CART_AT)
    due = CART_AT + HOUR
    # an emptied cart the notifier has not seen yet: no alert, the wait stays for its profile change to clear
    assert on_due(RULES, state, Fresh(emptied(6)), due) == (state, [])
    # a cached profile older than the wait says nothing about it
    assert alerts(on_due(RULES, state, Fresh(emptied(4)), due)[1]) == [("cart_abandoned", None)]
    assert newer(emptied(5), 5) == emptied(5) and newer(emptied(4), 5) is None and newer(None, 5) is None


def test_the_fresh_profile_gives_the_contact_channel() -> None:
    consent = {"email": {"marketing": {"granted": True}}}
    state, _ = on_profile(RULES, EMPTY, with_cart(), CART_AT)
    fresh = with_cart(version=2, consent=consent, identifiers={"email": ["ann@example.com"]})
    (raised, _) = on_due(RULES, state, Fresh(fresh), CART_AT + HOUR)[1]
    assert isinstance(raised, RaiseAlert) and not raised.alert.internal
    assert raised.alert.details["contact"] == {"channel": "email", "address": "ann@example.com"}


def test_an_erased_profile_loses_every_timer_without_an_alert() -> None:
    state, _ = on_profile(RULES, EMPTY, {**with_cart(), **complaining("m-1")}, CART_AT)
    assert state.complaints is not None and state.waits
    gone, effects = on_due(RULES, state, Fresh(erased=True), CART_AT + 2 * HOUR)
    assert gone == EMPTY
    assert effects == [ClearTimer("abandonment", "cart_abandoned:P"), ClearTimer("complaints", "P")]


def test_a_complaint_alerts_at_once_and_starts_its_clock_an_answer_stops_it() -> None:
    state, effects = on_profile(RULES, EMPTY, complaining("m-1"), CART_AT)
    clock = state.complaints
    assert clock is not None and alerts(effects) == [("complaint", 1)] and effects[-1] == SetTimer(clock)
    assert clock.due == (CART_AT + timedelta(seconds=600)).timestamp()  # normal priority
    # the next change re-raises level 1 (delivery knows its id) and writes nothing
    again, effects = on_profile(RULES, state, complaining("m-1", version=2), CART_AT)
    assert again == state and alerts(effects) == [("complaint", 1)] and len(effects) == 1
    answered, effects = on_profile(RULES, state, complaining(version=3), CART_AT)
    assert answered == EMPTY and effects == [ClearTimer("complaints", "P")]


def test_an_unanswered_complaint_escalates_to_level_two_then_three_then_stays_quiet() -> None:
    state, _ = on_profile(RULES, EMPTY, complaining("m-1"), CART_AT)
    sla = timedelta(seconds=600)
    assert on_due(RULES, state, Fresh(), CART_AT + sla - timedelta(seconds=1)) == (state, [])
    second, effects = on_due(RULES, state, Fresh(complaining("m-1")), CART_AT + sla)
    assert alerts(effects) == [("complaint_escalated", 2)] and effects[-1] == SetTimer(second.complaints)
    assert second.complaints is not None and second.complaints.due == (CART_AT + 2 * sla).timestamp()
    third, effects = on_due(RULES, second, Fresh(), CART_AT + 2 * sla)
    assert alerts(effects) == [("complaint_escalated", 3)]
    assert third.complaints is not None and third.complaints.due is None  # kept until the reply, never due
    assert on_due(RULES, third, Fresh(), CART_AT + 10 * sla) == (third, [])


def test_a_reply_not_yet_seen_stops_the_escalation_when_it_comes_due() -> None:
    state, _ = on_profile(RULES, EMPTY, complaining("m-1", "m-2"), CART_AT)
    due = CART_AT + timedelta(seconds=600)
    after, effects = on_due(RULES, state, Fresh(complaining("m-2", version=2)), due)  # m-1 was answered
    assert alerts(effects) == [("complaint_escalated", 2)]
    assert after.complaints is not None and list(after.complaints.timers) == ["m-2"]
    closed, effects = on_due(RULES, state, Fresh(complaining(version=2)), due)
    assert closed == EMPTY and effects == [ClearTimer("complaints", "P")]


def test_failed_payments_alert_at_once_with_no_timer() -> None:
    failure = {"payment_id": "pay-1", "order_id": "o-1", "amount": "9.90", "currency": "EUR", "reason": "declined"}
    doc: ProfileDoc = {"profile_id": "P", "recent_payment_failures": [{**failure, "at": CART_AT.isoformat()}]}
    state, effects = on_profile(RULES, EMPTY, doc, CART_AT)
    assert state == EMPTY and alerts(effects) == [("payment_failed", None)]


def test_alerts_come_before_the_timer_writes_of_a_step() -> None:
    doc = {**with_cart(), **complaining("m-1")}
    _, effects = on_profile(RULES, EMPTY, doc, CART_AT)
    kinds = [type(e) for e in effects]
    assert kinds == [RaiseAlert, SetTimer, SetTimer]
