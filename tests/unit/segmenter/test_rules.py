"""Segment definitions, the profile view they read, evaluation and membership changes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crmhub.core.conditions.fields import FIELD_TYPES, LazyView, profile_view
from crmhub.core.conditions.language import SegmentError, compile_segment, evaluate
from crmhub.core.errors import ConfigError
from services.profile.fold import fold_events
from services.segmenter.rules import load_definitions, membership_changes
from tests.unit import factories as f

SHIPPED = load_definitions()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
ORIGINAL = [
    d
    for d in SHIPPED
    if d.name in {"big_spenders", "repeat_buyers", "unhappy_customers", "open_carts", "omnichannel", "young_families"}
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "segments.yaml"
    path.write_text(text)
    return path


def test_the_shipped_library_loads_in_file_order() -> None:
    names = [d.name for d in SHIPPED]
    assert names[:6] == [
        "big_spenders",
        "repeat_buyers",
        "unhappy_customers",
        "open_carts",
        "omnichannel",
        "young_families",
    ]
    assert {
        "champions",
        "at_risk",
        "lapsed_90_days",
        "new_customers",
        "cart_abandoners",
        "loyalty_gold",
        "seniors",
    } <= set(names)
    assert SHIPPED[0].condition == "total_spent >= 500"
    assert all(d.description for d in SHIPPED)


def test_a_syntax_error_is_a_segment_error_naming_segment_and_condition() -> None:
    with pytest.raises(SegmentError, match=r"^segment 'broken': bad condition 'total_spent >=': syntax error"):
        compile_segment("broken", "total_spent >=")


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ('total_spent > 1 and 1 > "a"', "bad condition"),
        ('city =~ "("', "bad condition"),
        ("total_spend > 1", "unknown field 'total_spend'"),
        ('total_spent > "a lot"', "bad condition"),  # a type mismatch is caught when defining
        ("$now > last_order_at", r"\$now reads the wall clock"),
        ("days_since(last_order_at ?? first_order_at) > 3", r"days_since\(\) takes a field name"),
    ],
)
def test_every_bad_condition_is_a_segment_error(condition: str, message: str) -> None:
    with pytest.raises(SegmentError, match=f"segment 'broken': .*{message}"):
        compile_segment("broken", condition)


@pytest.mark.parametrize("name", ["", "Big Spenders", "a/b", "x" * 65])
def test_bad_segment_names_are_refused(name: str) -> None:
    with pytest.raises(SegmentError, match="segment name"):
        compile_segment(name, "order_count > 0")


def test_a_segment_knows_the_fields_it_reads_and_its_clock() -> None:
    d = compile_segment("s", "total_spent >= 500 and days_since(last_order_at) <= 90 and rfm.recency >= 4")
    assert d.fields == {"total_spent", "last_order_at", "rfm"}
    assert [(u.field, u.thresholds) for u in d.clock] == [("last_order_at", {Decimal(90)})]
    assert compile_segment("s", "open_complaints > 0").clock == ()
    assert d.fingerprint != compile_segment("s", "total_spent >= 501").fingerprint


@pytest.mark.parametrize(
    ("condition", "profile", "expected"),
    [
        ('"electronics" in top_categories', {"top_categories": ["toys", "electronics"]}, True),
        ('"electronics" in top_categories', {}, False),
        (
            "rfm.recency >= 4 and rfm.frequency >= 4",
            {
                "rfm": {
                    "recency": 5,
                    "frequency": 4,
                    "monetary": 1,
                    "score": "541",
                    "computed_at": "2026-06-01T00:00:00+00:00",
                }
            },
            True,
        ),
        ("rfm.recency >= 4 and rfm.frequency >= 4", {}, False),  # not scored yet
        (
            'consent.email and age_band == "25-34"',
            {
                "demographics": {"age_band": "25-34"},
                "consent": {"email": {"marketing": {"granted": True, "at": "2026-01-01T00:00:00Z", "source": "web"}}},
            },
            True,
        ),
        ('consent.email and age_band == "25-34"', {"demographics": {"age_band": "25-34"}}, False),
        (
            "total_spent >= 500 and days_since(last_order_at) <= 90",
            {"total_spent": "600", "last_order_at": "2026-03-04T00:00:00+00:00"},
            True,
        ),  # 89 days
        (
            "total_spent >= 500 and days_since(last_order_at) <= 90",
            {"total_spent": "600", "last_order_at": "2026-03-02T00:00:00+00:00"},
            False,
        ),  # 91 days
        (
            "open_complaints > 0",
            {
                "open_complaints": [
                    {"message_id": "m", "platform": "x", "handle": "@a", "text": "t", "at": "2026-06-01T00:00:00+00:00"}
                ]
            },
            True,
        ),
        ('loyalty_tier == "gold"', {"loyalty": {"tier": "gold"}}, True),
    ],
)
def test_the_issue_examples(condition: str, profile: dict[str, Any], expected: bool) -> None:
    d = compile_segment("s", condition)
    assert (evaluate([d], profile_view({"profile_id": "P", **profile}), NOW) == {"s"}) is expected


def test_load_definitions_from_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "segments:\n  - name: vip\n    condition: total_spent > 1000\n    description: VIPs\n")
    [vip] = load_definitions(path)
    assert (vip.name, vip.condition, vip.description) == ("vip", "total_spent > 1000", "VIPs")
    assert load_definitions(write(tmp_path, "")) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "segments:\n  - {name: a, condition: order_count > 1}\n  - {name: b}\n",
            "entry 1 needs a name and a condition",
        ),
        (
            "segments:\n  - {name: a, condition: order_count > 1}\n  - {name: a, condition: order_count > 2}\n",
            "duplicate segment names",
        ),
        ("segments: [\n", "segments.yaml: while parsing"),
        ("segments:\n  - {name: a, condition: 'x >'}\n", "segment 'a': bad condition 'x >'"),
    ],
    ids=["missing-condition", "duplicate-name", "bad-yaml", "bad-condition"],
)
def test_bad_segment_files_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_definitions(write(tmp_path, text))


def test_a_segment_file_that_is_not_a_mapping_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_definitions(write(tmp_path, "- name: a\n  condition: order_count > 1\n"))


def test_profile_view_of_a_published_profile() -> None:
    events = [
        f.identify({"age": 33, "children": 2, "city": "Berlin", "country": "DE"}),
        f.order("o-1", "450.25", minutes=1),
        f.pos_sale("s-1", "r-1", "49.75", minutes=2),
        f.added("p-1", "2.50", 3, minutes=3),
        f.added("p-2", "1.00", 1, minutes=4),
        f.mention("m-1", complaint=True, minutes=5),
        f.payment_failed("declined", minutes=6),
    ]
    published = fold_events(None, "P", events).model_dump(mode="json")  # what crm.profiles.v1 carries
    view = profile_view(published)
    expected = {
        "profile_id": "P",
        "order_count": 2,
        "web_orders": 1,
        "pos_orders": 1,
        "total_spent": Decimal("500.00"),
        "open_complaints": 1,
        "complaints_total": 1,
        "payment_failures": 1,
        "cart_items": 4,
        "cart_value": Decimal("8.50"),
        "age": 33,
        "age_band": "25-34",
        "children": 2,
        "city": "Berlin",
        "country": "DE",
        "gender": None,
        "last_order_at": f.at(2),
        "first_order_at": f.at(1),
        "consent": {"email": False, "sms": False, "phone": False, "push": False, "post": False},
        "rfm": {"recency": None, "frequency": None, "monetary": None, "score": None},
        "traits": {"age": 33, "children": 2, "city": "Berlin", "country": "DE"},
    }
    assert {k: view[k] for k in expected} == expected
    assert set(view) | {"days_since", "hours_since", "years_since"} == set(FIELD_TYPES)
    assert evaluate(ORIGINAL, view, NOW) == {
        "big_spenders",
        "repeat_buyers",
        "unhappy_customers",
        "open_carts",
        "omnichannel",
        "young_families",
    }


def test_a_lazy_view_gives_every_field_as_the_whole_view_does() -> None:
    events = [f.identify({"age": 33, "city": "Berlin"}), f.order("o-1", "450.25", minutes=1), f.consent("email")]
    published = fold_events(None, "P", events).model_dump(mode="json")
    whole = profile_view(published)
    assert LazyView(published)["total_spent"] == Decimal("450.25")  # one field read alone
    assert {name: LazyView(published)[name] for name in whole} == whole
    assert dict(LazyView(published)) == whole  # every field, in the view's order
    assert list(LazyView(published)) == list(whole)
    assert LazyView(published, {"city": "known"})["city"] == "known"  # computed already: not again
    assert LazyView(published).get("no_such_field", 7) == 7
    with pytest.raises(KeyError):
        LazyView(published)["days_since"]  # a time function, not a field of the view


def test_a_bare_profile_has_a_neutral_view_and_no_segments() -> None:
    view = profile_view({"profile_id": "P"})
    assert (view["order_count"], view["total_spent"], view["cart_items"], view["age"]) == (0, Decimal(0), 0, None)
    assert evaluate(ORIGINAL, view, NOW) == set()


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ({"total_spent": "499.99"}, set()),
        ({"total_spent": "500"}, {"big_spenders"}),
        ({"order_count": 2, "web_orders": 2}, {"repeat_buyers"}),
        ({"cart": {"items": [{"product_id": "p1", "price": "0", "quantity": 1}], "value": "0"}}, {"open_carts"}),
        ({"demographics": {"age_band": "45-54"}, "traits": {"children": 1}}, set()),
        ({"demographics": {"age_band": "25-34"}, "traits": {"children": 1}}, {"young_families"}),
        ({"demographics": {"age_band": "25-34"}}, set()),  # children unknown
        ({"traits": {"age": "thirty", "children": "two"}}, set()),  # wrong types never crash
    ],
)
def test_evaluate_boundaries(profile: dict[str, Any], expected: set[str]) -> None:
    assert evaluate(ORIGINAL, profile_view({"profile_id": "P", **profile}), NOW) == expected


def test_conditions_over_missing_fields_never_match_and_never_crash() -> None:
    defs = [
        compile_segment("gold", 'traits["plan"] == "gold"'),
        compile_segment("berliners", 'city =~ "^Ber"'),
        compile_segment("tier", 'loyalty_tier == "gold"'),
        compile_segment("band", '"3" in age_band'),  # `in` over null: rule-engine raises TypeError
    ]
    assert evaluate(defs, profile_view({"profile_id": "P"}), NOW) == set()
    view = profile_view({"profile_id": "P", "traits": {"plan": "gold", "city": "Berlin"}})
    assert evaluate(defs, view, NOW) == {"gold", "berliners"}


def test_membership_changes_are_sorted() -> None:
    assert membership_changes({"b", "keep", "a"}, {"keep", "z", "c"}) == (["c", "z"], ["a", "b"])
    assert membership_changes({"x"}, {"x"}) == ([], [])


def test_traits_are_read_by_name_with_their_json_types() -> None:
    defs = [
        compile_segment("gold", 'traits.plan == "gold"'),
        compile_segment("regulars", 'traits["visits"] >= 5 and traits["vip"] == true'),
        compile_segment("leeds_store", 'traits["favourite_store"] == "Leeds"'),
    ]
    traits = {"plan": "gold", "visits": 7, "vip": True, "favourite_store": "York"}
    assert evaluate(defs, profile_view({"profile_id": "P", "traits": traits}), NOW) == {"gold", "regulars"}
    assert evaluate(defs, profile_view({"profile_id": "P", "traits": {"visits": "many"}}), NOW) == set()


def test_context_and_group_fields() -> None:
    defs = [
        compile_segment("came_by_newsletter", 'first_touch_source == "newsletter" and last_touch_campaign == "sale"'),
        compile_segment("app_users", 'device_type in ["ios", "android"] and ip_country == "Germany"'),
        compile_segment("acme", '"acme" in groups'),
    ]
    context = {
        "first_touch": {"source": "newsletter", "at": "2025-03-01T00:00:00Z"},
        "last_touch": {"source": "ads", "campaign": "sale", "at": "2025-03-02T00:00:00Z"},
        "device_type": "ios",
        "country": "Germany",
    }
    view = profile_view(
        {"profile_id": "P", "context": context, "groups": {"acme": {"traits": {}, "at": "2026-06-01T00:00:00+00:00"}}}
    )
    assert evaluate(defs, view, NOW) == {"came_by_newsletter", "app_users", "acme"}
    assert evaluate(defs, profile_view({"profile_id": "P"}), NOW) == set()
