"""Identity resolution: priority, minting, merges of two and three profiles, limits, batches."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest

from services.ingest.identity import (
    ERASED,
    IdentityRules,
    IdKey,
    Merge,
    Resolution,
    Snapshot,
    mint_profile_id,
    resolve_batch,
    resolve_identity,
)

KINDS = ("customer_id", "email", "phone", "loyalty_id", "anonymous_id")
RULES = IdentityRules(KINDS, {"customer_id": 1, "email": 5, "phone": 5, "loyalty_id": 5, "anonymous_id": 1000})


def graph(links: Mapping[IdKey, str] | None = None, **counts: dict[str, int]) -> Snapshot:
    """A snapshot: identifier -> profile, and per profile (keyword) the number of ids of each kind it holds."""
    return Snapshot(dict(links or {}), counts)


def test_minted_ids_are_stable_uuid5s() -> None:
    # pinned: a changed namespace or key format would split every existing customer on replay
    assert mint_profile_id("customer_id", "c-1") == "e2fe514d-14de-5158-97c2-5abc18540fbe"
    assert mint_profile_id("anonymous_id", "a-1") == "6c72e764-17e9-5500-a4df-73b88fc05f9e"
    assert uuid.UUID(mint_profile_id("email", "x@y.z")).version == 5
    assert mint_profile_id("email", "c-1") != mint_profile_id("customer_id", "c-1")


def test_all_new_identifiers_mint_from_the_strongest_and_link_all() -> None:
    res = resolve_identity({"anonymous_id": "a-1", "email": "ann@example.com"}, graph(), RULES)
    assert res == Resolution(
        profile_id=mint_profile_id("email", "ann@example.com"),
        new_links=(("email", "ann@example.com"), ("anonymous_id", "a-1")),
    )


def test_the_configured_priority_decides_the_strongest_identifier() -> None:
    email_first = IdentityRules(("email", "anonymous_id", "customer_id", "phone", "loyalty_id"), RULES.limits)
    res = resolve_identity({"customer_id": "c-1", "email": "ann@example.com"}, graph(), email_first)
    assert res.profile_id == mint_profile_id("email", "ann@example.com")
    assert res.new_links == (("email", "ann@example.com"), ("customer_id", "c-1"))


def test_the_highest_priority_known_identifier_names_the_profile() -> None:
    known = graph({("email", "ann@example.com"): "P-email"})
    res = resolve_identity({"anonymous_id": "a-1", "email": "ann@example.com", "phone": "+4930"}, known, RULES)
    assert res == Resolution("P-email", new_links=(("phone", "+4930"), ("anonymous_id", "a-1")))


def test_a_known_weak_identifier_beats_minting_from_a_new_strong_one() -> None:
    known = graph({("anonymous_id", "a-1"): "P-anon"}, **{"P-anon": {"anonymous_id": 1}})
    res = resolve_identity({"customer_id": "c-1", "anonymous_id": "a-1"}, known, RULES)
    assert res == Resolution("P-anon", new_links=(("customer_id", "c-1"),))


def test_empty_values_and_unknown_kinds_are_ignored() -> None:
    res = resolve_identity({"customer_id": "", "device_id": "d-1", "loyalty_id": "L-1"}, graph(), RULES)
    assert res == Resolution(mint_profile_id("loyalty_id", "L-1"), (("loyalty_id", "L-1"),))


def test_no_identifiers_cannot_be_resolved() -> None:
    with pytest.raises(ValueError, match="no identifiers"):
        resolve_identity({"customer_id": ""}, graph(), RULES)


def test_an_event_naming_two_profiles_merges_the_weaker_into_the_stronger() -> None:
    known = graph(
        {("email", "ann@example.com"): "A", ("loyalty_id", "L-1"): "B"},
        A={"email": 1, "anonymous_id": 2},
        B={"loyalty_id": 1},
    )
    res = resolve_identity({"loyalty_id": "L-1", "email": "ann@example.com"}, known, RULES)
    assert res == Resolution("A", merges=(Merge("A", "B", ("loyalty_id", "L-1")),))


def test_an_event_naming_three_profiles_merges_two_and_links_the_new_identifier() -> None:
    known = graph(
        {("customer_id", "c-1"): "A", ("phone", "+4930"): "C", ("email", "ann@example.com"): "B"},
        A={"customer_id": 1},
        B={"email": 2},
        C={"phone": 1, "anonymous_id": 3},
    )
    ids = {"customer_id": "c-1", "email": "ann@example.com", "phone": "+4930", "anonymous_id": "a-9"}
    res = resolve_identity(ids, known, RULES)
    assert res == Resolution(
        "A",
        new_links=(("anonymous_id", "a-9"),),
        merges=(Merge("A", "B", ("email", "ann@example.com")), Merge("A", "C", ("phone", "+4930"))),
    )


def test_identifiers_of_one_profile_merge_nothing() -> None:
    known = graph({("email", "ann@example.com"): "A", ("anonymous_id", "a-1"): "A"}, A={"email": 1})
    res = resolve_identity({"email": "ann@example.com", "anonymous_id": "a-1"}, known, RULES)
    assert res == Resolution("A")


def test_a_second_customer_on_a_known_device_gets_a_profile_of_their_own() -> None:
    # device d-1 belongs to customer c-A's profile; customer c-B signs in on it: limit customer_id:1
    known = graph({("anonymous_id", "d-1"): "A"}, A={"customer_id": 1, "anonymous_id": 1})
    res = resolve_identity({"customer_id": "c-B", "anonymous_id": "d-1"}, known, RULES)
    assert res == Resolution(
        mint_profile_id("customer_id", "c-B"),
        new_links=(("customer_id", "c-B"),),
        limited=(("anonymous_id", "d-1"),),
    )


def test_a_merge_over_a_limit_is_not_made() -> None:
    # someone else's loyalty card: both profiles have a customer id, so they must stay apart
    known = graph(
        {("customer_id", "c-1"): "A", ("loyalty_id", "L-2"): "B"},
        A={"customer_id": 1},
        B={"customer_id": 1, "loyalty_id": 1},
    )
    res = resolve_identity({"customer_id": "c-1", "loyalty_id": "L-2"}, known, RULES)
    assert res == Resolution("A", limited=(("loyalty_id", "L-2"),))


def test_the_weakest_identifiers_are_left_out_until_the_rest_fits() -> None:
    known = graph(
        {("customer_id", "c-1"): "A", ("loyalty_id", "L-2"): "B"},
        A={"customer_id": 1, "email": 5},
        B={"customer_id": 1},
    )
    ids = {"customer_id": "c-1", "email": "new@example.com", "loyalty_id": "L-2", "anonymous_id": "a-1"}
    res = resolve_identity(ids, known, RULES)
    # the anonymous id would fit, but it is weaker than the loyalty id that breaks the limit
    assert res == Resolution(
        "A", limited=(("email", "new@example.com"), ("loyalty_id", "L-2"), ("anonymous_id", "a-1"))
    )


def test_limits_count_what_the_profile_holds_up_to_the_maximum() -> None:
    ids = {"email": "fifth@example.com", "customer_id": "c-1"}
    four = graph({("customer_id", "c-1"): "A"}, A={"customer_id": 1, "email": 4})
    assert resolve_identity(ids, four, RULES) == Resolution("A", new_links=(("email", "fifth@example.com"),))
    five = graph({("customer_id", "c-1"): "A"}, A={"customer_id": 1, "email": 5})
    assert resolve_identity(ids, five, RULES) == Resolution("A", limited=(("email", "fifth@example.com"),))


def test_a_profile_over_a_lowered_limit_still_takes_identifiers_of_other_kinds() -> None:
    known = graph({("customer_id", "c-1"): "A"}, A={"customer_id": 1, "email": 9})
    res = resolve_identity({"customer_id": "c-1", "phone": "+4930"}, known, RULES)
    assert res == Resolution("A", new_links=(("phone", "+4930"),))


def test_kinds_without_a_limit_take_any_number() -> None:
    known = graph({("customer_id", "c-1"): "A"}, A={"customer_id": 1, "email": 10_000})
    res = resolve_identity({"customer_id": "c-1", "email": "e@x.io"}, known, IdentityRules(KINDS, {}))
    assert res.new_links == (("email", "e@x.io"),)


def test_resolve_batch_later_events_see_earlier_links() -> None:
    batch = [
        {"anonymous_id": "a-1"},  # a visitor: new profile
        {"anonymous_id": "a-1", "customer_id": "c-1"},  # logs in: links c-1 to the visitor's profile
        {"customer_id": "c-1"},  # a POS sale by c-1: same profile
        {"anonymous_id": "a-2"},  # someone else
    ]
    snapshot = graph({("email", "unrelated@example.com"): "P-0"}, **{"P-0": {"email": 1}})
    plan = resolve_batch(batch, snapshot, RULES)
    visitor, other = mint_profile_id("anonymous_id", "a-1"), mint_profile_id("anonymous_id", "a-2")
    assert [r.profile_id for r in plan.resolutions] == [visitor, visitor, visitor, other]
    assert plan.links == {
        ("anonymous_id", "a-1"): visitor,
        ("customer_id", "c-1"): visitor,
        ("anonymous_id", "a-2"): other,
    }
    assert plan.merges == []
    assert snapshot == graph({("email", "unrelated@example.com"): "P-0"}, **{"P-0": {"email": 1}})  # not touched


def test_resolve_batch_counts_earlier_links_against_the_limits() -> None:
    # two customers sign in on one new device in one batch: the second gets a profile of their own
    plan = resolve_batch(
        [{"customer_id": "c-1", "anonymous_id": "d-1"}, {"customer_id": "c-2", "anonymous_id": "d-1"}], graph(), RULES
    )
    first, second = mint_profile_id("customer_id", "c-1"), mint_profile_id("customer_id", "c-2")
    assert [r.profile_id for r in plan.resolutions] == [first, second]
    assert plan.resolutions[1].limited == (("anonymous_id", "d-1"),)
    assert plan.links == {("customer_id", "c-1"): first, ("anonymous_id", "d-1"): first, ("customer_id", "c-2"): second}


def test_resolve_batch_merges_a_profile_started_earlier_in_the_batch() -> None:
    visitor = mint_profile_id("anonymous_id", "a-1")
    snapshot = graph({("customer_id", "c-1"): "P"}, P={"customer_id": 1})
    plan = resolve_batch([{"anonymous_id": "a-1"}, {"customer_id": "c-1", "anonymous_id": "a-1"}], snapshot, RULES)
    assert [r.profile_id for r in plan.resolutions] == [visitor, "P"]
    assert plan.merges == [Merge("P", visitor, ("anonymous_id", "a-1"))]
    assert plan.links == {("anonymous_id", "a-1"): "P"}  # the link made for the visitor moves with the merge


def test_resolve_batch_chains_merges_and_moves_identifier_counts() -> None:
    snapshot = graph(
        {("email", "ann@example.com"): "A", ("loyalty_id", "L-1"): "B", ("phone", "+4930"): "C"},
        A={"email": 1},
        B={"loyalty_id": 1},
        C={"phone": 1},
    )
    batch = [
        {"email": "ann@example.com", "loyalty_id": "L-1", "anonymous_id": "a-1"},  # B merges into A
        {"phone": "+4930", "loyalty_id": "L-1"},  # L-1 is A's now: A merges into C
        {"anonymous_id": "a-1"},  # the link made by the first event followed both merges
    ]
    plan = resolve_batch(batch, snapshot, RULES)
    assert [r.profile_id for r in plan.resolutions] == ["A", "C", "C"]
    assert plan.merges == [Merge("A", "B", ("loyalty_id", "L-1")), Merge("C", "A", ("loyalty_id", "L-1"))]
    assert plan.links == {("anonymous_id", "a-1"): "C"}


def test_resolve_batch_checks_limits_on_what_earlier_merges_brought() -> None:
    snapshot = graph(
        {("email", "ann@example.com"): "A", ("loyalty_id", "L-1"): "B", ("customer_id", "c-9"): "C"},
        A={"email": 1},
        B={"loyalty_id": 1, "customer_id": 1},
        C={"customer_id": 1},
    )
    batch = [
        {"email": "ann@example.com", "loyalty_id": "L-1"},  # A takes B's customer id
        {"customer_id": "c-9", "email": "ann@example.com"},  # so A cannot merge into C any more
    ]
    plan = resolve_batch(batch, snapshot, RULES)
    assert plan.merges == [Merge("A", "B", ("loyalty_id", "L-1"))]
    assert plan.resolutions[1] == Resolution("C", limited=(("email", "ann@example.com"),))


def test_resolve_batch_is_deterministic() -> None:
    batch = [{"email": "a@x.io", "phone": "+1"}, {"phone": "+1", "loyalty_id": "L"}, {"loyalty_id": "L"}]
    assert resolve_batch(batch, graph(), RULES) == resolve_batch(list(batch), graph(), RULES)
    assert [r.profile_id for r in resolve_batch(batch, graph(), RULES).resolutions] == [
        mint_profile_id("email", "a@x.io")
    ] * 3


def test_an_identifier_of_an_erased_profile_suppresses_the_event_and_links_nothing() -> None:
    erased = graph({("email", "ann@example.com"): ERASED, ("customer_id", "c-2"): "P-2"})
    batch = [
        {"anonymous_id": "a-new", "email": "ann@example.com"},
        {"customer_id": "c-2", "email": "ann@example.com"},  # no merge into the erased
        {"anonymous_id": "a-new"},  # was not linked by the suppressed event
    ]
    plan = resolve_batch(batch, erased, RULES)
    assert [r.suppressed for r in plan.resolutions] == [True, True, False]
    assert plan.resolutions[0] == Resolution(ERASED, suppressed=True)
    assert plan.merges == [] and plan.links == {("anonymous_id", "a-new"): mint_profile_id("anonymous_id", "a-new")}
