"""Hypothesis on the raw decoders. Whatever the bytes, ``decode_raw`` gives an Event or a Rejection with a
documented reason, never one of its "unexpected" catch-all (an exception this code did not foresee); the
collector's body decoding gives a JSON object or its 400; raw lines go on one entry per line."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.collector import CollectorError, parse_body
from services.ingest.decode import RawInput, Rejection, decode_raw
from services.ingest.raw_http import line_entries
from tests.fuzzing import cases

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CASES = cases(400)

integers = st.integers(-(2**63), 2**63 - 1)  # what JSON (orjson) carries
scalars = st.none() | st.booleans() | integers | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
)
times = st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat) | st.text(max_size=30)
# the keys the decoder reads, with values of any JSON type or plausible ones
segment_calls = st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "batch", "nope"])
native_types = st.sampled_from(["order.placed", "pos.sale", "payment.failed", "social.mention", "profile.merged", "x"])
plausible = {
    "type": segment_calls | native_types | json_values,
    "event": st.text(max_size=20) | json_values,
    "event_id": st.uuids().map(str) | json_values,
    "messageId": st.uuids().map(str) | json_values,
    "userId": st.text(max_size=20) | json_values,
    "anonymousId": st.text(max_size=20) | json_values,
    "timestamp": times | json_values,
    "occurred_at": times | json_values,
    "properties": json_values,
    "traits": json_values,
    "context": json_values,
    "identifiers": json_values,
    "payload": json_values,
    "schema_version": st.integers(-2, 5) | json_values,
}
messages = st.fixed_dictionaries({}, optional=plausible)


def decoded(value: bytes) -> Any:
    return decode_raw(RawInput("web", value, NOW, NOW))


def foreseen(result: Any) -> bool:
    return not (isinstance(result, Rejection) and result.reason.startswith("unexpected "))


@CASES
@given(st.binary(max_size=300))
def test_any_bytes_decode_to_an_event_or_a_documented_rejection(value: bytes) -> None:
    assert foreseen(decoded(value))


@CASES
@given(messages)
def test_any_message_shaped_object_decodes_to_an_event_or_a_documented_rejection(message: dict[str, Any]) -> None:
    result = decoded(orjson.dumps(message))
    assert foreseen(result), result


@CASES
@given(
    st.binary(max_size=300) | messages.map(orjson.dumps).map(gzip.compress),
    st.sampled_from(["identity", "gzip", "deflate", "br", "x"]),
)
def test_a_collector_body_is_a_json_object_or_a_collector_error(raw: bytes, encoding: str) -> None:
    try:
        assert isinstance(parse_body(raw, encoding), dict)
    except CollectorError as exc:
        assert exc.status == 400 and exc.code in {"invalid_json", "invalid_request", "payload_too_large"}


@CASES
@given(st.lists(st.binary(max_size=60) | messages.map(orjson.dumps), max_size=6))
def test_raw_lines_go_on_one_entry_per_line_whatever_they_hold(lines: list[bytes]) -> None:
    body = b"\n".join(lines)
    entries = line_entries("pos", body, "r-1")
    assert [e.value for e in entries] == [s for line in body.split(b"\n") if (s := line.strip())]
