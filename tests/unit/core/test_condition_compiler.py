"""Compiled conditions give rule-engine's answers: every shipped segment and journey condition, and
hand-written ones reaching every construct the compiler translates, against ``Rule.matches`` over many
random views (nulls, missing fields, ints, Decimals and floats, times on and around every threshold,
empty and odd arrays, objects with missing attributes, values of the wrong type)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import rule_engine
from pydantic import BaseModel
from rule_engine import DataType

from crmhub.core.conditions.clock import time_functions
from crmhub.core.conditions.fields import FIELD_TYPES, profile_view
from crmhub.core.conditions.language import Condition, compile_condition
from services.notifier.journeys.catalog import load_journeys
from services.notifier.journeys.triggers import EventTrigger, ItemsTrigger
from services.segmenter.rules import load_definitions

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
VIEWS = 800

EDGES = [
    "total_spent >= 500",
    "500 <= total_spent",
    "total_spent == 500 or total_spent != 42.00",
    "total_spent > 10.5 and order_count != 3",
    "review_avg <= 2 or csat_avg == 0.1 or nps_latest > -0.5",
    "children != null and children > 0",
    "age == null or not (age > 30)",
    "not age",
    "(age ?? 0) > 30",
    "days_since(last_order_at) % 7 == 0",
    "days_since(last_order_at) < 30 and last_order_at != null",
    "hours_since(cart_updated_at) >= 1",
    "years_since(birthday) >= 67",
    "-days_since(last_order_at) > -30",
    "days_since(membership_expires_at) >= -30 and days_since(membership_expires_at) < 0",
    "latest_registered_event_at == null or days_since(latest_registered_event_at) >= 0",
    "not (days_since(last_order_at) < 30)",
    "'toys' in top_categories",
    "'toys' not in top_categories",
    "age_band in ['25-34', '35-44']",
    "'5' in age_band",
    "age_band =~ '^[0-9]+-'",
    "city =~~ 'on'",
    "city !~ 'Lon.*'",
    "city !~~ 'x'",
    "city =~ null",
    "rfm.recency >= 4 and consent.email",
    "rfm.score == '555' or rfm.monetary == 5",
    "rfm&.recency >= 4",
    "engagement.email_opened > 0",
    "consent.sms == true",
    "traits['plan'] == 'gold'",
    "traits['visits'] >= 5",
    "traits['tags'][0] == 'a'",
    "traits&['plan'] == null",
    "top_categories[0] == 'toys'",
    "top_categories[-1] == 'books'",
    "top_categories&[3] == null",
    "order_count * 2 > 5",
    "total_spent / order_count > 100",
    "total_spent // 3 == 1 or total_spent % 2 == 1",
    "order_count ** 2 >= 4",
    "total_spent - refunded_total >= 100",
    "order_count + web_orders == 3",
    "city + 'x' == 'Londonx'",
    "last_order_at - created_at > t'P30D'",
    "last_order_at + t'P1D' > created_at",
    "last_order_at > d'2026-01-01'",
    "created_at <= updated_at",
    "warranty_ends != []",
    "top_categories == ['toys']",
    "top_categories < ['b']",
    "loyalty_tier == 'gold' ? total_spent > 100 : total_spent > 1000",
    "email_bounced or successor_available",
    "profile_id == 'P1'",
]
INTERPRETED = [  # no translation: rule-engine itself (the compiler says so)
    "top_categories.length > 1",
    "traits.plan == 'gold'",
    "[x for x in top_categories if x == 'toys'] != []",
    "top_categories[0:1] == ['toys']",
    "city =~ city",
]
EVENT_CONDITIONS = [
    "total >= 100 and currency == 'EUR'",
    "amount > 10.5 or amount == 0.1",
    "tags[0] == 'x' or 'x' in tags",
    "name =~ '^A' and name != null",
    "nested['k'] == 1",
]


def reference(condition: Condition, view: Mapping[str, Any], now: datetime, typed: bool = True) -> bool:
    """rule-engine's answer, as the segmenter took it before conditions were compiled."""
    try:
        return bool(condition.rule.matches({**view, **time_functions(now)} if typed else view))
    except (rule_engine.EngineError, TypeError):
        return False


def in_journeys(value: Any, typed: bool = True) -> Iterator[tuple[Condition, bool]]:
    """The conditions of a journey, and whether each is over the profile (an event or items trigger's
    ``where`` is over the event's or the item's properties)."""
    if isinstance(value, Condition):
        yield value, typed
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from in_journeys(
                getattr(value, name), typed and not (isinstance(value, EventTrigger | ItemsTrigger) and name == "where")
            )
    elif isinstance(value, tuple | list):
        for item in value:
            yield from in_journeys(item, typed)


JOURNEY_CONDITIONS = [found for journey in load_journeys() for found in in_journeys(journey)]
SHIPPED = [compile_condition(d.condition) for d in load_definitions()]
SHIPPED += [c for c, typed in JOURNEY_CONDITIONS if typed]

# ---- random views -------------------------------------------------------------------------------------

STRINGS = ["", "gold", "Gold", "silver", "platinum", "25-34", "35-44", "65+", "active", "lapsed", "none", "London"]
STRINGS += ["detractor", "promoter", "toys", "books", "a", "x", "P1", "555", "web"]
NUMBERS: list[Any] = [0, 1, 2, 3, 4, 5, 7, 42, 90, 499, 500, 1000, -1, Decimal("499.99"), Decimal("500.00")]
NUMBERS += [Decimal("42.0"), Decimal("0.1"), Decimal("10.5"), Decimal("-0.5"), Decimal("2.5"), 0.1, 2.5, -0.5, 4.0]
DAYS = [0, 1, 6, 7, 29, 30, 31, 59, 60, 89, 90, 91, 180, 364, 365, -1, -29, -30, -31, 67 * 365 + 17, 25_000]


def a_time(rng: random.Random) -> datetime:
    at = NOW - timedelta(days=rng.choice(DAYS)) + timedelta(seconds=rng.choice([0, 0, 1, -1, 3600, -3600, 7]))
    return at.replace(tzinfo=None) if rng.random() < 0.03 else at  # a naive time now and then


def a_value(rng: random.Random, kind: Any) -> Any:
    if rng.random() < 0.15:
        return None
    if rng.random() < 0.03:  # the wrong type: rule-engine refuses it, so must the compiled condition
        return rng.choice(["5", True, Decimal(1), (), {"a": 1}, NOW])
    if kind == DataType.FLOAT:
        return rng.choice(NUMBERS)
    if kind == DataType.STRING:
        return rng.choice(STRINGS)
    if kind == DataType.BOOLEAN:
        return rng.random() < 0.5
    if kind == DataType.DATETIME:
        return a_time(rng)
    if DataType.is_type(kind, DataType.ARRAY):
        items = [a_value(rng, kind.value_type) for _ in range(rng.choice([0, 1, 2, 3]))]
        return tuple(items) if rng.random() < 0.9 else items
    if DataType.is_type(kind, DataType.OBJECT):
        return {k: a_value(rng, t) for k, t in kind.attributes.items() if rng.random() < 0.9}
    return a_json(rng, 2)  # the traits mapping, an event's properties


def a_json(rng: random.Random, depth: int) -> Any:
    pick = rng.randrange(8 if depth else 5)
    if pick < 5:
        return [None, rng.choice(STRINGS), rng.choice(NUMBERS), rng.random() < 0.5, rng.choice([1, 5, 6])][pick]
    if pick == 5:
        return [a_json(rng, depth - 1) for _ in range(rng.randrange(3))]
    keys = ["plan", "visits", "tags", "vip", "k", "x"]
    return {k: a_json(rng, depth - 1) for k in rng.sample(keys, rng.randrange(4))}


def a_view(rng: random.Random) -> dict[str, Any]:
    return {
        name: a_value(rng, kind)
        for name, kind in FIELD_TYPES.items()
        if not DataType.is_type(kind, DataType.FUNCTION) and rng.random() < 0.95
    }


def an_event(rng: random.Random) -> dict[str, Any]:
    fields = ["total", "currency", "amount", "tags", "name", "nested", "complaint", "sentiment"]
    values = {
        "tags": lambda: [rng.choice(STRINGS) for _ in range(rng.randrange(3))],
        "complaint": lambda: rng.choice([True, False, None, "yes"]),
    }
    return {f: values.get(f, lambda: a_json(rng, 1))() for f in fields if rng.random() < 0.8}


# ---- the comparison ---------------------------------------------------------------------------------------


def disagreements(conditions: list[Condition], views: list[dict[str, Any]], typed: bool = True) -> list[str]:
    found = []
    for i, view in enumerate(views):
        now = NOW + timedelta(seconds=i % 3 - 1)  # just before, at and after the thresholds
        for c in conditions:
            if c.holds(view, now) != reference(c, view, now, typed):
                found.append(f"{c.text!r} on view {i}: compiled {c.holds(view, now)}")
    return found


def views(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    typed = [a_view(rng) for _ in range(VIEWS)]
    from_profiles = [profile_view({"profile_id": "P1"})] + [  # what the segmenter really sees
        {**profile_view({"profile_id": f"p{i}"}), **{k: v for k, v in a_view(rng).items() if v is not None}}
        for i in range(200)
    ]
    return typed + from_profiles


def test_the_shipped_segments_and_journey_conditions_are_compiled_and_agree_with_rule_engine() -> None:
    assert len(SHIPPED) >= 38 and all(c.native for c in SHIPPED), [c.text for c in SHIPPED if not c.native]
    assert disagreements(SHIPPED, views(1)) == []


def test_every_construct_the_compiler_translates_agrees_with_rule_engine() -> None:
    edges = [compile_condition(text) for text in EDGES]
    assert [c.text for c in edges if not c.native] == []
    sample = views(2)
    assert disagreements(edges, sample) == []
    # the random views do reach both answers of each condition (else the comparison proves little)
    one_sided = [c.text for c in edges if len({c.holds(v, NOW) for v in sample}) < 2]
    assert one_sided == []


def test_conditions_it_cannot_translate_are_interpreted_by_rule_engine() -> None:
    interpreted = [compile_condition(text) for text in INTERPRETED]
    assert [c.native for c in interpreted] == [False] * len(INTERPRETED)
    assert disagreements(interpreted, views(3)[:300]) == []


def test_event_conditions_read_any_name_untyped() -> None:
    conditions = [compile_condition(text, None) for text in EVENT_CONDITIONS]
    conditions += [c for c, typed in JOURNEY_CONDITIONS if not typed]
    assert len(conditions) > len(EVENT_CONDITIONS) and all(c.native for c in conditions)
    rng = random.Random(4)
    assert disagreements(conditions, [an_event(rng) for _ in range(3000)], typed=False) == []


@pytest.mark.parametrize(
    ("condition", "view", "expected"),
    [
        ("total_spent >= 500", {"total_spent": None}, False),  # null compared: false, never an error
        ("not (total_spent >= 500)", {"total_spent": None}, False),  # the error makes all of it false
        ("total_spent != 500", {}, True),  # missing is null, and null is not 500
        ("'toys' in top_categories", {"top_categories": None}, False),  # ``x in null``
        ("total_spent == 0.1", {"total_spent": 0.1}, True),  # a float reads as its shortest repr
        ("total_spent > 0.1", {"total_spent": 0.1}, False),  # (the binary float is a bit above 0.1)
        ("total_spent == 500", {"total_spent": 500}, True),  # an int is the same number as a Decimal
        ("order_count == 1", {"order_count": True}, False),  # a boolean is no number
        ("days_since(last_order_at) >= 90", {"last_order_at": NOW - timedelta(days=90)}, True),
        ("days_since(last_order_at) >= 90", {"last_order_at": NOW - timedelta(days=90) + timedelta(seconds=1)}, False),
        ("years_since(birthday) >= 67", {"birthday": datetime(1959, 6, 1, tzinfo=UTC)}, True),
        ("years_since(birthday) >= 67", {"birthday": datetime(1, 1, 1, tzinfo=UTC)}, True),
        ("rfm.recency >= 4", {"rfm": None}, False),
        ("rfm.recency >= 4", {"rfm": {"frequency": 5}}, False),
        ("traits['plan'] == null", {"traits": {}}, False),  # a missing key is an error, not null
        ("city =~ '^Lon'", {"city": "London"}, True),
        ("city !~ '^Lon'", {"city": None}, True),
        ("top_categories[5] == 'x'", {"top_categories": ("x",)}, False),
        ("total_spent / order_count > 1", {"total_spent": 5, "order_count": 0}, False),  # division by zero
    ],
)
def test_edge_cases(condition: str, view: dict[str, Any], expected: bool) -> None:
    compiled = compile_condition(condition)
    assert compiled.native
    assert compiled.holds(view, NOW) is expected
    assert reference(compiled, view, NOW) is expected
