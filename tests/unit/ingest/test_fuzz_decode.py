"""Hypothesis on the raw decoder: whatever the bytes, ``decode_raw`` gives an Event or a Rejection with a
documented reason, never one of its "unexpected" catch-all (an exception this code did not foresee)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.decode import RawInput, Rejection, decode_raw

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CASES = settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=30)
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
