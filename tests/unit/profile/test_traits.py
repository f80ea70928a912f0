"""The traits facet: every trait kept, latest by event time, the profile's limit, and the merge rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import MAX_TRAIT_KEY_CHARS, MAX_TRAIT_VALUE_BYTES, MAX_TRAITS
from services.profile.facets.traits import MAX_PROFILE_TRAITS, MAX_REFUSED_NAMES
from services.profile.fold import fold_events
from services.profile.merge import merge_profiles
from tests.unit import factories as f


def test_every_trait_is_kept_with_its_json_type_and_the_identifiers_are_not() -> None:
    traits = {"plan": "gold", "vip": True, "visits": 7, "address": {"city": "Leeds"}, "email": "a@example.com"}
    p = fold_events(None, "P", [f.identify(traits, email="a@example.com")])
    assert p.traits == {"plan": "gold", "vip": True, "visits": 7, "address": {"city": "Leeds"}, "city": "Leeds"}
    assert p.demographics.city == "Leeds"


def test_the_latest_value_by_event_time_wins_whatever_the_arrival_order() -> None:
    late = [f.identify({"plan": "gold"}, minutes=5), f.identify({"plan": "silver", "store": "York"}, minutes=1)]
    p = fold_events(None, "P", late)
    assert (p.traits["plan"], p.traits["store"]) == ("gold", "York")
    assert p.trait_sources["plan"].at == f.at(5)


def test_a_full_profile_refuses_new_traits_by_name_and_still_updates_known_ones() -> None:
    full = {f"t{i}": i for i in range(MAX_PROFILE_TRAITS)}
    p = fold_events(None, "P", [f.identify(full, minutes=1)])
    p = fold_events(p, "P", [f.identify({"t0": "new", "extra": 1, "another": 2}, minutes=2)])
    assert len(p.traits) == MAX_PROFILE_TRAITS and p.traits["t0"] == "new"
    assert p.traits_refused == ["extra", "another"]
    more = {f"x{i}": i for i in range(MAX_REFUSED_NAMES + 5)}
    p = fold_events(p, "P", [f.identify(more, minutes=3)])
    assert len(p.traits_refused) == MAX_REFUSED_NAMES and p.traits_refused[-1] == f"x{MAX_REFUSED_NAMES + 4}"


@pytest.mark.parametrize(
    ("traits", "reason"),
    [
        ({f"t{i}": i for i in range(MAX_TRAITS + 1)}, f"at most {MAX_TRAITS} may be sent at once"),
        ({"k" * (MAX_TRAIT_KEY_CHARS + 1): 1}, f"longer than {MAX_TRAIT_KEY_CHARS} characters"),
        ({"notes": "x" * MAX_TRAIT_VALUE_BYTES}, f"trait 'notes' is larger than {MAX_TRAIT_VALUE_BYTES} bytes"),
    ],
    ids=["too-many", "long-name", "large-value"],
)
def test_an_identify_over_a_limit_is_refused_naming_it(traits: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        f.identify(traits)


def test_a_merge_keeps_the_newer_value_of_each_trait_and_both_sides_traits() -> None:
    survivor = fold_events(None, "S", [f.identify({"plan": "gold", "store": "York"}, minutes=1)])
    absorbed = fold_events(None, "A", [f.identify({"plan": "silver", "pets": 2, "city": "Hull"}, minutes=2)])
    merged = merge_profiles(survivor, absorbed)
    assert merged.traits == {"plan": "silver", "store": "York", "pets": 2, "city": "Hull"}
    assert merged.demographics.city == "Hull"


def test_a_merge_over_the_limit_keeps_the_survivors_traits_and_names_the_others() -> None:
    survivor = fold_events(None, "S", [f.identify({f"t{i}": i for i in range(MAX_PROFILE_TRAITS)}, minutes=1)])
    absorbed = fold_events(None, "A", [f.identify({"t0": "newer", "pets": 2}, minutes=2)])
    merged = merge_profiles(survivor, absorbed)
    assert merged.traits["t0"] == "newer" and "pets" not in merged.traits
    assert merged.traits_refused == ["pets"]


def test_traits_repeated_in_the_context_of_other_calls_are_kept_too() -> None:
    viewed = f.make("page", minutes=3, context={"traits": {"plan": "gold", "city": "Leeds"}})
    p = fold_events(None, "P", [f.identify({"plan": "silver"}, minutes=1), viewed])
    assert p.traits == {"plan": "gold", "city": "Leeds"} and p.demographics.city == "Leeds"


def test_an_event_without_context_serialises_without_it() -> None:
    assert b'"context"' not in f.make("page").__pydantic_serializer__.to_json(f.make("page"))
    with_context = f.make("page", context={"locale": "en-GB"})
    assert b'"context":{"locale":"en-GB"}' in with_context.__pydantic_serializer__.to_json(with_context)
