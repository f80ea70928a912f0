"""Segment definitions, the profile view they read, evaluation and membership changes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crmhub.errors import ConfigError
from services.profile.fold import fold_events
from services.segmenter.rules import (
    compile_segment,
    evaluate,
    load_definitions,
    membership_changes,
    profile_view,
)
from tests.unit import factories as f

SHIPPED = load_definitions()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "segments.yaml"
    path.write_text(text)
    return path


def test_the_shipped_definitions_load_in_file_order() -> None:
    assert [d.name for d in SHIPPED] == [
        "big_spenders",
        "repeat_buyers",
        "unhappy_customers",
        "open_carts",
        "omnichannel",
        "young_families",
    ]
    assert SHIPPED[0].condition == "total_spent >= 500"
    assert all(d.description for d in SHIPPED)


def test_a_syntax_error_is_a_config_error_naming_segment_and_condition() -> None:
    with pytest.raises(ConfigError, match=r"^segment 'broken': bad condition 'total_spent >=': syntax error"):
        compile_segment("broken", "total_spent >=")


@pytest.mark.parametrize("condition", ['total_spent > 1 and 1 > "a"', 'city =~ "("'])
def test_every_compile_error_is_a_config_error(condition: str) -> None:
    with pytest.raises(ConfigError, match="segment 'broken': bad condition"):
        compile_segment("broken", condition)


def test_load_definitions_from_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "segments:\n  - name: vip\n    condition: total_spent > 1000\n    description: VIPs\n")
    [vip] = load_definitions(path)
    assert (vip.name, vip.condition, vip.description) == ("vip", "total_spent > 1000", "VIPs")
    assert load_definitions(write(tmp_path, "")) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("segments:\n  - {name: a, condition: x > 1}\n  - {name: b}\n", "entry 1 needs a name and a condition"),
        ("segments:\n  - {name: a, condition: x > 1}\n  - {name: a, condition: x > 2}\n", "duplicate segment names"),
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
        load_definitions(write(tmp_path, "- name: a\n  condition: x > 1\n"))


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
    assert view == {
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
        "children": 2,
        "city": "Berlin",
        "country": "DE",
        "gender": None,
        "traits": {"age": 33, "children": 2, "city": "Berlin", "country": "DE"},
    }
    assert evaluate(SHIPPED, view) == {
        "big_spenders",
        "repeat_buyers",
        "unhappy_customers",
        "open_carts",
        "omnichannel",
        "young_families",
    }


def test_a_bare_profile_has_a_neutral_view_and_no_segments() -> None:
    view = profile_view({"profile_id": "P"})
    assert (view["order_count"], view["total_spent"], view["cart_items"], view["age"]) == (0, Decimal(0), 0, None)
    assert evaluate(SHIPPED, view) == set()


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ({"total_spent": "499.99"}, set()),
        ({"total_spent": "500"}, {"big_spenders"}),
        ({"order_count": 2, "web_orders": 2}, {"repeat_buyers"}),
        ({"cart": {"items": [{"quantity": 1}], "value": "0"}}, {"open_carts"}),
        ({"traits": {"age": 41, "children": 1}}, set()),
        ({"traits": {"age": 25, "children": 1}}, {"young_families"}),
        ({"traits": {"age": 30}}, set()),  # children unknown
        ({"traits": {"age": "thirty", "children": "two"}}, set()),  # wrong types never crash
    ],
)
def test_evaluate_boundaries(profile: dict[str, Any], expected: set[str]) -> None:
    assert evaluate(SHIPPED, profile_view({"profile_id": "P", **profile})) == expected


def test_conditions_over_missing_fields_never_match_and_never_crash() -> None:
    defs = [
        compile_segment("gold", 'traits["plan"] == "gold"'),
        compile_segment("berliners", 'city =~ "^Ber"'),
        compile_segment("tier", 'loyalty_tier == "gold"'),
    ]
    assert evaluate(defs, profile_view({"profile_id": "P"})) == set()
    view = profile_view({"profile_id": "P", "traits": {"plan": "gold", "city": "Berlin"}})
    assert evaluate(defs, view) == {"gold", "berliners"}


def test_membership_changes_are_sorted() -> None:
    assert membership_changes({"b", "keep", "a"}, {"keep", "z", "c"}) == (["c", "z"], ["a", "b"])
    assert membership_changes({"x"}, {"x"}) == ([], [])
