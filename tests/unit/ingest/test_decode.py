"""Raw bytes -> exactly one Event or one Rejection (reason + location), never an exception."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas.events import Identify, OrderCompleted, PosSale, ProductAdded
from services.ingest.decode import RawInput, Rejection, decode_raw

RECEIVED = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
POS_SALE: dict[str, Any] = {
    "event_id": "e-1",
    "type": "pos.sale",
    "occurred_at": "2025-03-14T08:00:00+00:00",
    "loyalty_id": "L-1",
    "properties": {"store_id": "s-1", "till_id": "t-1", "receipt_id": "r-1", "total": "12.50"},
}
TRACK: dict[str, Any] = {
    "type": "track",
    "event": "Product Added",
    "messageId": "msg-1",
    "userId": "u-1",
    "timestamp": "2025-03-14T08:59:00Z",
    "properties": {"product_id": "p-1", "price": 19.99, "quantity": 2},
}


def decode(obj: Any = None, *, source: str = "pos", raw: bytes | None = None) -> Any:
    value = raw if raw is not None else orjson.dumps(obj)
    return decode_raw(RawInput(source, value, RECEIVED))


def with_props(**props: Any) -> dict[str, Any]:
    return {**POS_SALE, "properties": {**POS_SALE["properties"], **props}}


def test_a_native_event_decodes_with_source_and_receive_time() -> None:
    event = decode(POS_SALE)
    assert isinstance(event, PosSale)
    assert (event.event_id, event.source, event.received_at) == ("e-1", "pos", RECEIVED)
    assert event.properties.total == Decimal("12.50")
    assert event.identifiers() == {"loyalty_id": "L-1"}


def test_a_segment_track_call_decodes_to_a_web_event() -> None:
    event = decode(TRACK, source="web")
    assert isinstance(event, ProductAdded)
    assert (event.event_id, event.source, event.customer_id) == ("msg-1", "web", "u-1")
    assert event.occurred_at == datetime(2025, 3, 14, 8, 59, tzinfo=UTC)
    assert event.properties.price == Decimal("19.99")  # a JSON float, kept exact
    assert event.properties.quantity == 2


def test_identifiers_are_normalised_before_validation() -> None:
    event = decode({**POS_SALE, "email": "  Ann@Example.com", "loyalty_id": "null", "customer_id": 77})
    assert isinstance(event, PosSale)
    assert event.identifiers() == {"customer_id": "77", "email": "ann@example.com"}


def test_a_json_float_total_keeps_its_exact_decimal_value() -> None:
    raw = b'{"type":"track","event":"Order Completed","userId":"u","properties":{"order_id":"o","total":0.1}}'
    event = decode(raw=raw, source="web")
    assert isinstance(event, OrderCompleted)
    assert event.properties.amount == Decimal("0.1")


@pytest.mark.parametrize(
    ("raw", "reason_start", "location"),
    [
        (b"{", "invalid JSON: ", "body"),
        (b"\xff\xfe", "invalid JSON: ", "body"),
        (b"[1, 2]", "expected a JSON object, got list", "body"),
        (b"null", "expected a JSON object, got NoneType", "body"),
    ],
)
def test_bodies_that_are_not_json_objects_are_rejected(raw: bytes, reason_start: str, location: str) -> None:
    result = decode(raw=raw)
    assert isinstance(result, Rejection)
    assert result.reason.startswith(reason_start)
    assert result.location == location


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (with_props(total="lots"), Rejection("Input should be a valid decimal", "properties.total")),
        (with_props(total="-1"), Rejection("Input should be greater than or equal to 0", "properties.total")),
        (
            {k: v for k, v in POS_SALE.items() if k != "event_id"},
            Rejection("Field required", "event_id"),
        ),
        (
            {**POS_SALE, "properties": {"total": "1"}},
            Rejection("Field required (and 2 more)", "properties.store_id"),
        ),
        ({**POS_SALE, "type": "pos.refund"}, Rejection("unknown event type 'pos.refund'", "type")),
        (
            {**POS_SALE, "schema_version": 3},
            Rejection("unsupported schema_version 3 (this hub reads up to 2)", "schema_version"),
        ),
        (
            {**POS_SALE, "loyalty_id": "unknown"},
            Rejection("the event carries no usable customer identifier", "identifiers"),
        ),
        ({**POS_SALE, "source": "web"}, Rejection("source 'web' arrived on the pos topic", "source")),
        (
            {**POS_SALE, "occurred_at": "2025-03-14T08:00:00"},
            Rejection("Input should have timezone info", "occurred_at"),
        ),
    ],
    ids=[
        "total-not-a-number",
        "negative-total",
        "missing-event-id",
        "three-errors",
        "unknown-type",
        "future-schema",
        "placeholder-only-id",
        "wrong-source",
        "naive-time",
    ],
)
def test_invalid_native_events_are_rejected_with_reason_and_location(obj: dict[str, Any], expected: Rejection) -> None:
    assert decode(obj) == expected


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        ({**TRACK, "type": "group"}, Rejection("Field required", "group_id")),
        ({**TRACK, "event": None}, Rejection("a track call needs an 'event' name", "event")),
        ({**TRACK, "timestamp": 1710406800}, Rejection("expected an ISO 8601 time string", "timestamp")),
        ({**TRACK, "userId": None}, Rejection("the event carries no usable customer identifier", "identifiers")),
        ({**TRACK, "messageId": 5}, Rejection("Input should be a valid string", "event_id")),
    ],
    ids=["group-without-id", "no-event-name", "numeric-timestamp", "anonymous-nobody", "numeric-message-id"],
)
def test_invalid_segment_messages_are_rejected(msg: dict[str, Any], expected: Rejection) -> None:
    assert decode(msg, source="web") == expected


@pytest.mark.parametrize("version", ["3", 3.0, 3])
def test_a_future_schema_version_is_rejected_whatever_its_json_type(version: Any) -> None:
    assert decode({**POS_SALE, "schema_version": version}) == Rejection(
        "unsupported schema_version 3 (this hub reads up to 2)", "schema_version"
    )


@pytest.mark.parametrize(
    "msg",
    [{**TRACK, "traits": "vip"}, {**TRACK, "context": {"traits": ["vip"]}}],
    ids=["traits-string", "context-traits-list"],
)
def test_segment_traits_that_are_not_objects_are_rejected_not_raised(msg: dict[str, Any]) -> None:
    assert isinstance(decode(msg, source="web"), Rejection)


def test_an_unhashable_type_is_rejected_not_raised() -> None:
    assert decode({**POS_SALE, "type": ["pos.sale"]}) == Rejection("unknown event type ['pos.sale']", "type")


@pytest.mark.parametrize(
    "times",
    [
        {"timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"},
        {"timestamp": "0001-01-01T00:30:00+01:00"},
    ],
    ids=["skew-overflow", "utc-conversion-overflow"],
)
def test_extreme_times_are_rejected_not_raised(times: dict[str, str]) -> None:
    result = decode({**TRACK, **times}, source="web")
    assert isinstance(result, Rejection)
    assert result.location in {"timestamp", "sentAt", "occurred_at"}


def test_a_segment_message_takes_the_source_of_its_write_key() -> None:
    """A store that tracks through a Segment SDK with its pos key sends store events, not web events."""
    event = decode({**TRACK, "event": "Order Completed", "properties": {"order_id": "o", "total": 3}}, source="pos")
    assert isinstance(event, OrderCompleted) and event.source == "pos"


def test_identify_traits_are_normalised_like_the_identifiers() -> None:
    msg = {"type": "identify", "userId": "u-1", "traits": {"email": " Ann@Example.COM ", "phone": "+44 20 7946 0958"}}
    event = decode(msg, source="web")
    assert isinstance(event, Identify)
    assert (event.traits.email, event.traits.phone) == ("ann@example.com", "+442079460958")
    assert (event.email, event.phone) == ("ann@example.com", "+442079460958")


def test_profile_merged_is_not_accepted_from_outside() -> None:
    """Only ingest decides merges: an input claiming one would merge any two customers it names."""
    merged = {
        "event_id": "e-9",
        "type": "profile.merged",
        "customer_id": "c-1",
        "occurred_at": "2025-03-14T08:00:00+00:00",
        "properties": {"survivor_id": "a", "absorbed_id": "b", "linked_by": "customer_id"},
    }
    expected = Rejection("profile.merged events are made by crmhub, not accepted as input", "type")
    assert decode(merged) == expected
    assert decode({**merged, "source": "crm"}) == Rejection("source 'crm' arrived on the pos topic", "source")


def test_shared_device_ids_are_dropped_like_placeholders() -> None:
    shared = frozenset({("anonymous_id", "kiosk-1")})
    value = orjson.dumps({**TRACK, "anonymousId": "kiosk-1", "userId": None})
    assert decode_raw(RawInput("web", value, RECEIVED), shared) == Rejection(
        "the event carries no usable customer identifier", "identifiers"
    )
    kept = decode_raw(RawInput("web", orjson.dumps({**TRACK, "anonymousId": "kiosk-1"}), RECEIVED), shared)
    assert not isinstance(kept, Rejection) and kept.identifiers() == {"customer_id": "u-1"}
