"""The marketing-context and groups facets: first and last touch, latest values, caps, merge rules."""

from __future__ import annotations

from typing import Any

from schemas.events import Event
from schemas.profile import Touch
from services.profile.facets.groups import MAX_GROUPS
from services.profile.fold import fold_events
from services.profile.merge import merge_profiles
from tests.unit import factories as f


def visit(minutes: float, **context: Any) -> Event:
    return f.make("page", minutes=minutes, context=context)


def test_first_and_last_touch_follow_event_time_not_arrival() -> None:
    events = [
        visit(5, campaign={"source": "ads", "name": "sale"}),
        visit(1, campaign={"source": "newsletter", "medium": "email", "name": "spring"}),
        visit(9, locale="en-GB"),  # no campaign: the last touch stays
    ]
    p = fold_events(None, "P", events)
    assert p.context.first_touch == Touch(source="newsletter", medium="email", campaign="spring", at=f.at(1))
    assert p.context.last_touch == Touch(source="ads", campaign="sale", at=f.at(5))


def test_newer_context_values_win_and_older_ones_only_fill_gaps() -> None:
    events = [
        visit(5, device_type="mobile", locale="de-DE"),
        visit(1, device_type="desktop", timezone="Europe/Berlin", referrer="https://a.example/"),
    ]
    p = fold_events(None, "P", events)
    assert (p.context.device_type, p.context.locale, p.context.timezone) == ("mobile", "de-DE", "Europe/Berlin")
    assert p.context.referrer == "https://a.example/" and p.context.updated_at == f.at(5)


def test_a_merge_takes_the_earlier_first_touch_the_later_last_and_the_newer_values() -> None:
    survivor = fold_events(None, "S", [visit(3, campaign={"source": "s"}, locale="fr-FR", country="France")])
    absorbed = fold_events(None, "A", [visit(1, campaign={"source": "a"}), visit(7, locale="en-GB")])
    merged = merge_profiles(survivor, absorbed).context
    assert (merged.first_touch and merged.first_touch.source, merged.last_touch and merged.last_touch.source) == (
        "a",
        "s",
    )
    assert (merged.locale, merged.country, merged.updated_at) == ("en-GB", "France", f.at(7))


def group(group_id: str, minutes: float, **traits: Any) -> Event:
    return f.make("group", minutes=minutes, group_id=group_id, traits=traits)


def test_a_group_keeps_the_traits_of_its_latest_call() -> None:
    p = fold_events(None, "P", [group("acme", 5, name="Acme", plan="pro"), group("acme", 1, name="Old name")])
    assert p.groups["acme"].traits == {"name": "Acme", "plan": "pro"} and p.groups["acme"].at == f.at(5)
    assert p.traits == {}  # a group's traits describe the group, not the person


def test_the_group_seen_least_recently_goes_first_past_the_cap() -> None:
    p = fold_events(None, "P", [group(f"g{i}", i) for i in range(MAX_GROUPS + 2)])
    assert len(p.groups) == MAX_GROUPS and "g0" not in p.groups and "g1" not in p.groups


def test_a_merge_unites_groups_and_a_shared_group_keeps_its_later_call() -> None:
    survivor = fold_events(None, "S", [group("acme", 1, name="Acme"), group("club", 2, name="Club")])
    absorbed = fold_events(None, "A", [group("acme", 4, name="Acme Ltd")])
    merged = merge_profiles(survivor, absorbed)
    assert {k: v.traits["name"] for k, v in merged.groups.items()} == {"acme": "Acme Ltd", "club": "Club"}
