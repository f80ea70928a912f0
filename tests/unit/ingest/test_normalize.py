"""Segment and native messages -> envelope dicts: times, clock-skew correction, identifier clean-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.ingest.normalize import (
    NormalizeError,
    corrected_time,
    fallback_event_id,
    from_native,
    from_segment,
    is_segment_message,
    marketing_context,
    normalize_identifiers,
    parse_time,
    shared_identifiers,
)

RECEIVED = datetime(2025, 3, 14, 9, 0, 0, tzinfo=UTC)


def test_clock_skew_correction_uses_the_device_offset() -> None:
    # the device clock runs 2 minutes fast: it stamped the event at 09:01 and sent it at 09:03
    timestamp = datetime(2025, 3, 14, 9, 1, tzinfo=UTC)
    sent_at = datetime(2025, 3, 14, 9, 3, tzinfo=UTC)
    assert corrected_time(timestamp, sent_at, RECEIVED) == datetime(2025, 3, 14, 8, 58, tzinfo=UTC)


def test_corrected_time_without_sent_at_trusts_the_timestamp() -> None:
    timestamp = datetime(2025, 3, 14, 7, 0, tzinfo=UTC)
    assert corrected_time(timestamp, None, RECEIVED) == timestamp


def test_corrected_time_without_timestamp_is_the_receive_time() -> None:
    assert corrected_time(None, datetime(2025, 1, 1, tzinfo=UTC), RECEIVED) == RECEIVED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-14T09:00:00Z", datetime(2025, 3, 14, 9, 0, tzinfo=UTC)),
        ("2025-03-14T10:30:00+01:00", datetime(2025, 3, 14, 9, 30, tzinfo=UTC)),
        ("2025-03-14T09:00:00", datetime(2025, 3, 14, 9, 0, tzinfo=UTC)),  # zone-less means UTC
    ],
)
def test_parse_time_returns_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text, "timestamp")
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)
    assert parse_time(None, "sentAt") is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [(1710406800, "expected an ISO 8601 time string"), ("yesterday", "not an ISO 8601 time: 'yesterday'")],
)
def test_parse_time_errors_name_the_location(value: Any, reason: str) -> None:
    with pytest.raises(NormalizeError) as info:
        parse_time(value, "sentAt")
    assert (info.value.reason, info.value.location) == (reason, "sentAt")


def test_is_segment_message() -> None:
    assert is_segment_message({"type": "track"})
    assert is_segment_message({"type": "identify"})
    assert not is_segment_message({"type": "identify", "event_id": "e-1"})  # a native envelope
    assert not is_segment_message({"type": "pos.sale"})


def test_from_segment_track_maps_ids_type_and_properties() -> None:
    msg = {
        "type": "track",
        "event": "Product Added",
        "messageId": "msg-1",
        "anonymousId": "anon-1",
        "userId": "u-1",
        "timestamp": "2025-03-14T08:59:00Z",
        "sentAt": "2025-03-14T09:00:00Z",
        "properties": {"product_id": "p-1", "price": 3},
        "context": {"traits": {"email": "ann@example.com"}},
    }
    out = from_segment(msg, b"raw", "web", RECEIVED, None)
    assert out == {
        "event_id": "msg-1",
        "source": "web",
        "occurred_at": datetime(2025, 3, 14, 8, 59, tzinfo=UTC),
        "received_at": RECEIVED,
        "anonymous_id": "anon-1",
        "customer_id": "u-1",
        "email": "ann@example.com",
        "phone": None,
        "type": "Product Added",
        "properties": {"product_id": "p-1", "price": 3},
    }


def test_from_segment_sent_at_in_the_body_wins_over_the_header() -> None:
    msg = {"type": "track", "event": "X", "timestamp": "2025-03-14T09:10:00Z", "sentAt": "2025-03-14T09:10:00Z"}
    header_sent_at = datetime(2025, 3, 14, 9, 20, tzinfo=UTC)
    out = from_segment(msg, b"raw", "web", RECEIVED, header_sent_at)
    assert out["occurred_at"] == RECEIVED  # no skew according to the body


def test_from_segment_uses_the_header_sent_at_when_the_body_has_none() -> None:
    msg = {"type": "track", "event": "X", "timestamp": "2025-03-14T09:10:00Z"}
    out = from_segment(msg, b"raw", "web", RECEIVED, datetime(2025, 3, 14, 9, 20, tzinfo=UTC))
    assert out["occurred_at"] == datetime(2025, 3, 14, 8, 50, tzinfo=UTC)


def test_from_segment_identify_merges_context_traits_under_message_traits() -> None:
    msg = {
        "type": "identify",
        "userId": "u-1",
        "traits": {"email": "new@example.com", "city": "Berlin"},
        "context": {"traits": {"email": "old@example.com", "phone": "+4930123456"}},
    }
    out = from_segment(msg, b"raw", "web", RECEIVED, None)
    assert out["type"] == "identify"
    assert out["traits"] == {"email": "new@example.com", "phone": "+4930123456", "city": "Berlin"}
    assert (out["email"], out["phone"]) == ("new@example.com", "+4930123456")
    assert "properties" not in out


def test_from_segment_without_message_id_gets_a_deterministic_id() -> None:
    raw = b'{"type":"track"}'
    out = from_segment({"type": "track", "event": "X"}, raw, "web", RECEIVED, None)
    assert out["event_id"] == fallback_event_id(raw)
    assert out["event_id"].startswith("sha256:")
    assert len(out["event_id"]) == len("sha256:") + 40
    assert fallback_event_id(raw + b" ") != fallback_event_id(raw)


def test_a_screen_is_the_mobile_page() -> None:
    msg = {"type": "screen", "userId": "u1", "name": "Basket", "properties": {"items": 2}}
    out = from_segment(msg, b"raw", "web", RECEIVED, None)
    assert (out["type"], out["properties"]) == ("screen", {"items": 2, "name": "Basket"})


def test_a_group_names_the_account_and_only_context_traits_identify_the_person() -> None:
    msg = {
        "type": "group",
        "userId": "u1",
        "groupId": "acme",
        "traits": {"name": "Acme Ltd", "email": "billing@acme.example"},
        "context": {"traits": {"email": "ann@example.com"}},
    }
    out = from_segment(msg, b"raw", "web", RECEIVED, None)
    assert (out["type"], out["group_id"], out["email"]) == ("group", "acme", "ann@example.com")
    assert out["traits"] == {"name": "Acme Ltd", "email": "billing@acme.example"}


MOBILE_CONTEXT = {
    "app": {"name": "Shop", "version": "4.2.0", "build": "420"},
    "device": {"type": "ios", "model": "iPhone15,2", "id": "device-1"},
    "os": {"name": "iOS", "version": "17.4"},
    "locale": "de-DE",
    "timezone": "Europe/Berlin",
    "ip": "203.0.113.9",
    "location": {"country": "Germany"},
    "campaign": {"source": "newsletter", "medium": "email", "name": "spring"},
}


def test_the_marketing_context_is_kept_and_the_ip_is_not() -> None:
    assert marketing_context(MOBILE_CONTEXT) == {
        "campaign": {"source": "newsletter", "medium": "email", "name": "spring"},
        "device_type": "ios",
        "locale": "de-DE",
        "timezone": "Europe/Berlin",
        "country": "Germany",
    }


def test_a_browser_campaign_comes_from_the_page_url_when_the_sdk_gave_none() -> None:
    context = {
        "page": {"url": "https://shop.example/?utm_source=ads&utm_campaign=sale", "referrer": "https://a.example/"},
        "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148",
    }
    assert marketing_context(context) == {
        "campaign": {"source": "ads", "name": "sale"},
        "referrer": "https://a.example/",
        "device_type": "mobile",
    }


@pytest.mark.parametrize(
    ("context", "device_type"),
    [
        ({"userAgentData": {"mobile": False}, "userAgent": "Mozilla/5.0 (X11; Linux x86_64)"}, "desktop"),
        ({"userAgentData": {"mobile": True}}, "mobile"),
        ({"userAgent": "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X)"}, "tablet"),
        ({"userAgent": "Mozilla/5.0 (Linux; Android 14; SM-X710)"}, "tablet"),
        ({"device": {"type": "android"}, "userAgent": "okhttp/4"}, "android"),
        ({}, None),
    ],
)
def test_device_type(context: dict[str, Any], device_type: str | None) -> None:
    assert marketing_context(context).get("device_type") == device_type


def test_context_values_of_the_wrong_shape_are_left_out_and_long_ones_cut() -> None:
    context = {"page": "not an object", "campaign": ["x"], "locale": 5, "timezone": "T" * 500}
    assert marketing_context(context) == {"timezone": "T" * 200}


def test_a_message_without_context_carries_none() -> None:
    out = from_segment({"type": "track", "event": "X", "userId": "u"}, b"raw", "web", RECEIVED, None)
    assert "context" not in out


def test_from_segment_track_needs_an_event_name() -> None:
    with pytest.raises(NormalizeError) as info:
        from_segment({"type": "track", "event": ""}, b"raw", "web", RECEIVED, None)
    assert info.value.location == "event"


def test_from_native_stamps_source_and_receive_time() -> None:
    obj = {"event_id": "e-1", "type": "pos.sale", "received_at": "2000-01-01T00:00:00Z"}
    assert from_native(obj, "pos", RECEIVED) == {
        "event_id": "e-1",
        "type": "pos.sale",
        "source": "pos",
        "received_at": RECEIVED,
    }


def test_from_native_rejects_a_source_from_another_topic() -> None:
    with pytest.raises(NormalizeError) as info:
        from_native({"source": "web"}, "pos", RECEIVED)
    assert (info.value.reason, info.value.location) == ("source 'web' arrived on the pos topic", "source")


def test_normalize_identifiers_trims_lowercases_and_strips_phone_punctuation() -> None:
    event = {
        "customer_id": "  C-42 ",
        "email": " Ann.Smith@Example.COM ",
        "phone": "+1 (555) 123-4567",
        "loyalty_id": "L/77",
        "anonymous_id": "anon-1",
    }
    assert normalize_identifiers(event) == {
        "customer_id": "C-42",  # ids keep their case
        "email": "ann.smith@example.com",
        "phone": "+15551234567",
        "loyalty_id": "L/77",
        "anonymous_id": "anon-1",
    }


@pytest.mark.parametrize("placeholder", ["  ", "NULL", "undefined", "0", "n/a"])
def test_normalize_identifiers_drops_placeholders(placeholder: str) -> None:
    out = normalize_identifiers({"customer_id": placeholder, "email": placeholder, "anonymous_id": "a-1"})
    assert out == {"customer_id": None, "email": None, "anonymous_id": "a-1"}


@pytest.mark.parametrize("email", ["guest@shop.com", " GUEST@x ", "Guest@Example.COM"])
def test_guest_emails_are_placeholders(email: str) -> None:
    assert normalize_identifiers({"email": email, "anonymous_id": "a-1"})["email"] is None
    assert normalize_identifiers({"email": "guesthouse@example.com"})["email"] == "guesthouse@example.com"


def test_shared_identifiers_are_dropped_whatever_their_spelling() -> None:
    shared = shared_identifiers(
        [("anonymous_id", "kiosk-7"), ("email", " Till@Shop.COM"), ("phone", "+1 (555) 123-4567")]
    )
    event = {"anonymous_id": " kiosk-7 ", "email": "till@shop.com", "phone": "+15551234567", "customer_id": "c-1"}
    assert normalize_identifiers(event, shared) == {
        "anonymous_id": None,
        "email": None,
        "phone": None,
        "customer_id": "c-1",
    }


def test_a_shared_value_of_another_kind_is_kept() -> None:
    shared = shared_identifiers([("anonymous_id", "kiosk-7")])
    assert normalize_identifiers({"customer_id": "kiosk-7"}, shared) == {"customer_id": "kiosk-7"}


def test_normalize_identifiers_turns_numbers_into_strings_but_leaves_other_types() -> None:
    out = normalize_identifiers({"customer_id": 12345, "loyalty_id": 0, "anonymous_id": True, "email": ["x"]})
    assert out == {"customer_id": "12345", "loyalty_id": None, "anonymous_id": True, "email": ["x"]}


def test_identify_traits_stand_for_missing_envelope_identifiers_and_are_normalised() -> None:
    event = {"type": "identify", "traits": {"email": " Ann@Example.COM ", "phone": "+1 (555) 123-4567"}}
    out = normalize_identifiers(event)
    assert (out["email"], out["phone"]) == ("ann@example.com", "+15551234567")
    placeholder = normalize_identifiers({"type": "identify", "email": None, "traits": {"email": "unknown"}})
    assert placeholder["email"] is None


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+1 (555) 123-4567", "+15551234567"),
        ("+49 151 1234 5678", "+4915112345678"),
        ("+1-800-FLOWERS", "+18003569377"),
        ("0151 / 123-4567", "01511234567"),  # no country: punctuation goes, the digits stay as they are
    ],
)
def test_phones_become_e164_where_the_country_is_known(raw: str, e164: str) -> None:
    assert normalize_identifiers({"phone": raw})["phone"] == e164


def test_page_and_alias_calls_map_to_events() -> None:
    received = datetime(2026, 1, 1, tzinfo=UTC)
    page = from_segment(
        {"type": "page", "anonymousId": "a-1", "name": "Home", "properties": {"url": "https://shop/"}},
        b"{}",
        "web",
        received,
        None,
    )
    assert (page["type"], page["properties"]) == ("page", {"url": "https://shop/", "name": "Home"})
    alias = from_segment({"type": "alias", "previousId": "a-1", "userId": "c-1"}, b"{}", "web", received, None)
    assert (alias["type"], alias["anonymous_id"], alias["customer_id"]) == ("alias", "a-1", "c-1")


def test_context_traits_of_other_calls_are_kept_for_the_profile_and_an_identifys_are_its_own() -> None:
    context = {"traits": {"email": "a@example.com", "plan": "gold"}}
    track = from_segment({"type": "track", "event": "X", "userId": "u", "context": context}, b"", "web", RECEIVED, None)
    assert (track["email"], track["context"]) == ("a@example.com", {"traits": {"plan": "gold"}})
    identify = from_segment({"type": "identify", "userId": "u", "context": context}, b"", "web", RECEIVED, None)
    assert identify["traits"] == {"email": "a@example.com", "plan": "gold"} and "context" not in identify
