"""Where ingest says an input was read: the dedup claim that tells a re-read input from a duplicate."""

from __future__ import annotations

from types import SimpleNamespace

from services.ingest.app import claim_location


def record(offset: int, headers: list[tuple[str, bytes]]) -> SimpleNamespace:
    return SimpleNamespace(topic="crm.raw.web.v1", partition=2, offset=offset, headers=headers)


def test_a_journaled_input_is_named_by_its_journal_seq_whatever_broker_it_came_through() -> None:
    first = claim_location(record(17, [("received_at", b"x"), ("journal_seq", b"42")]), "run-1")
    again = claim_location(record(3, [("journal_seq", b"42")]), "run-2")  # produced again to a new broker
    assert first == again == ("journal:42", 42)


def test_another_input_is_named_by_its_place_in_this_incarnation_of_the_raw_topic() -> None:
    assert claim_location(record(17, []), "run-1") == ("run-1:crm.raw.web.v1:2:17", None)
