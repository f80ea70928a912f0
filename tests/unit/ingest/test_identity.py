"""Identity resolution: priority order, deterministic minting, links seen within a batch."""

from __future__ import annotations

import uuid

import pytest

from services.ingest.identity import Resolution, mint_profile_id, resolve_batch, resolve_identity


def test_minted_ids_are_stable_uuid5s() -> None:
    # pinned: a changed namespace or key format would split every existing customer on replay
    assert mint_profile_id("customer_id", "c-1") == "e2fe514d-14de-5158-97c2-5abc18540fbe"
    assert mint_profile_id("anonymous_id", "a-1") == "6c72e764-17e9-5500-a4df-73b88fc05f9e"
    assert uuid.UUID(mint_profile_id("email", "x@y.z")).version == 5
    assert mint_profile_id("email", "c-1") != mint_profile_id("customer_id", "c-1")


def test_all_new_identifiers_mint_from_the_strongest_and_link_all() -> None:
    res = resolve_identity({"anonymous_id": "a-1", "email": "ann@example.com"}, {})
    assert res == Resolution(
        profile_id=mint_profile_id("email", "ann@example.com"),
        new_links=(("email", "ann@example.com"), ("anonymous_id", "a-1")),
    )


def test_the_highest_priority_known_identifier_names_the_profile() -> None:
    known = {("email", "ann@example.com"): "P-email", ("anonymous_id", "a-1"): "P-anon"}
    res = resolve_identity({"anonymous_id": "a-1", "email": "ann@example.com", "phone": "+4930"}, known)
    assert res == Resolution(profile_id="P-email", new_links=(("phone", "+4930"),))


def test_a_known_weak_identifier_beats_minting_from_a_new_strong_one() -> None:
    res = resolve_identity({"customer_id": "c-1", "anonymous_id": "a-1"}, {("anonymous_id", "a-1"): "P-anon"})
    assert res == Resolution(profile_id="P-anon", new_links=(("customer_id", "c-1"),))


def test_empty_values_and_unknown_kinds_are_ignored() -> None:
    res = resolve_identity({"customer_id": "", "device_id": "d-1", "loyalty_id": "L-1"}, {})
    assert res == Resolution(mint_profile_id("loyalty_id", "L-1"), (("loyalty_id", "L-1"),))


def test_no_identifiers_cannot_be_resolved() -> None:
    with pytest.raises(ValueError, match="no identifiers"):
        resolve_identity({"customer_id": ""}, {})


def test_resolve_batch_later_events_see_earlier_links() -> None:
    batch = [
        {"anonymous_id": "a-1"},  # a visitor: new profile
        {"anonymous_id": "a-1", "customer_id": "c-1"},  # logs in: links c-1 to the visitor's profile
        {"customer_id": "c-1"},  # a POS sale by c-1: same profile
        {"anonymous_id": "a-2"},  # someone else
    ]
    known = {("email", "unrelated@example.com"): "P-0"}
    ids, links = resolve_batch(batch, known)
    visitor = mint_profile_id("anonymous_id", "a-1")
    assert ids == [visitor, visitor, visitor, mint_profile_id("anonymous_id", "a-2")]
    assert links == {
        ("anonymous_id", "a-1"): visitor,
        ("customer_id", "c-1"): visitor,
        ("anonymous_id", "a-2"): mint_profile_id("anonymous_id", "a-2"),
    }
    assert known == {("email", "unrelated@example.com"): "P-0"}  # the caller's map is not touched


def test_resolve_batch_does_not_relink_known_identifiers() -> None:
    known = {("customer_id", "c-1"): "P-1"}
    ids, links = resolve_batch([{"customer_id": "c-1"}, {"customer_id": "c-1", "email": "e@x.io"}], known)
    assert ids == ["P-1", "P-1"]
    assert links == {("email", "e@x.io"): "P-1"}


def test_resolve_batch_is_deterministic() -> None:
    batch = [{"email": "a@x.io", "phone": "+1"}, {"phone": "+1", "loyalty_id": "L"}, {"loyalty_id": "L"}]
    assert resolve_batch(batch, {}) == resolve_batch(list(batch), {})
    assert resolve_batch(batch, {})[0] == [mint_profile_id("email", "a@x.io")] * 3
