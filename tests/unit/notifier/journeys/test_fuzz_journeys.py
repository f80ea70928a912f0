"""Hypothesis on the journey language: any document (YAML's or the API's JSON) parses to a journey or raises
``JourneyError`` naming what is wrong, never anything else; a journey whose trigger condition (over event
properties) and branch condition (over the profile) are fuzzed runs on any event and customer without
raising, each call ending in a state and effects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.notifier.journeys.catalog import JourneyError, parse_journey
from services.notifier.journeys.definition import Journey
from services.notifier.journeys.engine import on_due, on_event, on_trigger
from services.notifier.journeys.triggers import event_occurrence
from tests.fuzzing import cases
from tests.unit.notifier.journeys.fixtures import NOW, customer
from tests.unit.segmenter.test_fuzz_conditions import conditions

CASES = cases(300)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
STEP_KEYS = ("name", "wait", "until", "branch", "then", "send", "template", "consent", "update", "tag", "exit")
JOURNEY_KEYS = ("id", "status", "trigger", "steps", "reentry", "goal", "exit", "policy", "version", "name")
TRIGGERS = st.sampled_from(
    [
        {"event": "Order Completed"},
        {"event": ["Product Added", "Checkout Started"], "where": "total > 10"},
        {"segment": "lapsed", "on": "entered"},
        {"date": "birthday", "offset": "-30d"},
        {"date": "last_order_at", "offset": "90d", "yearly": True},
    ]
)
STEPS = st.sampled_from(
    [
        {"name": "w", "wait": "2h"},
        {"name": "u", "until": "09:00"},
        {"name": "b", "branch": "order_count > 1", "then": "x"},
        {"name": "m", "send": "email", "consent": "email", "template": "Hi {{ profile.city }}"},
        {"name": "t", "update": "tag", "tag": "vip"},
        {"name": "x", "exit": True},
    ]
)
valid = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["j", "win-back", "renewal_30"]),
        "trigger": TRIGGERS,
        "steps": st.lists(STEPS, min_size=1, max_size=4, unique_by=lambda step: step["name"]),
    },
    optional={
        "status": st.sampled_from(["active", "paused"]),
        "reentry": st.sampled_from(["never", "restart", "parallel", "30d"]),
        "goal": st.just({"event": "Order Completed", "within": "7d"}),
    },
)
wrong_step = st.dictionaries(st.sampled_from(STEP_KEYS), json_values, max_size=4)
documents = (
    valid
    | st.tuples(valid, st.sampled_from(JOURNEY_KEYS), json_values).map(lambda t: {**t[0], t[1]: t[2]})
    | st.tuples(valid, wrong_step).map(lambda t: {**t[0], "steps": [*t[0]["steps"], t[1]]})
    | st.dictionaries(st.sampled_from(JOURNEY_KEYS), json_values, max_size=5)
    | json_values
)


@CASES
@given(documents)
def test_any_document_is_a_journey_or_a_journey_error(doc: Any) -> None:
    try:
        journey = parse_journey(doc)
    except JourneyError as exc:
        assert str(exc)  # says what is wrong
        return
    assert isinstance(journey, Journey) and journey.steps


def fuzzed_journey(where: str, branch: str) -> Journey | None:
    doc = {
        "id": "fuzzed",
        "status": "active",
        "trigger": {"event": "Order Completed", "where": where},
        "steps": [
            {"name": "check", "branch": branch, "then": "mail"},
            {"name": "pause", "wait": "1h"},
            {"name": "mail", "send": "email", "consent": "email", "template": "Hi {{ trigger.data.total }}"},
        ],
    }
    try:
        return parse_journey(doc)
    except JourneyError:
        return None  # the documented answer to a condition that does not compile


properties = st.dictionaries(
    st.sampled_from(["total", "order_id", "currency", "plan", "products", "coupon"]), json_values, max_size=4
)
views = st.fixed_dictionaries({}, optional={"order_count": json_values, "city": json_values, "traits": json_values})


@CASES
@given(conditions, conditions, properties, views)
def test_a_journey_with_fuzzed_conditions_runs_on_any_event_and_customer(
    where: str, branch: str, props: dict[str, Any], view: dict[str, Any]
) -> None:
    journey = fuzzed_journey(where, branch)
    if journey is None:
        return
    who = customer(**view)
    occ = event_occurrence("Order Completed", "e1", props, NOW)
    enrollment, effects = on_trigger(journey, None, occ, who, NOW)
    assert isinstance(effects, list)
    if enrollment is not None and enrollment.active:
        enrollment, _ = on_event(journey, enrollment, occ, NOW)
        on_due(journey, enrollment, who, NOW + timedelta(hours=1))
