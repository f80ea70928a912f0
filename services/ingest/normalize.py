"""Pure normalisation: Segment tracking-API messages and native envelopes -> envelope dicts."""

from __future__ import annotations

import functools
import hashlib
import re
import urllib.parse
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import phonenumbers

SEGMENT_CALLS = frozenset({"track", "identify", "page", "screen", "alias", "group"})
# Values that identify nobody: they must never link two customers together.
PLACEHOLDERS = frozenset({"", "null", "none", "nil", "undefined", "0", "-1", "anonymous", "unknown", "guest", "n/a"})
_PHONE_JUNK = re.compile(r"[\s().\-/]")
UTM_NAMES = ("source", "medium", "campaign")
CONTEXT_CHARS, REFERRER_CHARS = 200, 2000  # longer context values are cut (EventContext's limits)
_TABLET = re.compile(r"iPad|Tablet|Android(?!.*Mobile)")


class NormalizeError(ValueError):
    def __init__(self, reason: str, location: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location


def is_segment_message(obj: dict[str, Any]) -> bool:
    call = obj.get("type")
    return isinstance(call, str) and call in SEGMENT_CALLS and "event_id" not in obj


def parse_time(value: Any, location: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise NormalizeError("expected an ISO 8601 time string", location)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise NormalizeError(f"not an ISO 8601 time: {value[:40]!r}", location) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Segment treats zone-less times as UTC
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise NormalizeError(f"time out of range: {value[:40]!r}", location) from exc


def corrected_time(timestamp: datetime | None, sent_at: datetime | None, received_at: datetime) -> datetime:
    """Segment's clock-skew correction: ``received_at - (sent_at - timestamp)``."""
    if timestamp is None:
        return received_at
    if sent_at is None:
        return timestamp
    try:
        return received_at - (sent_at - timestamp)
    except OverflowError as exc:
        raise NormalizeError("timestamp and sentAt are too far apart to correct the clock skew", "sentAt") from exc


def fallback_event_id(raw: bytes) -> str:
    """A deterministic id for input that carries none, so a redelivery is still recognised."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:40]


def from_segment(
    msg: dict[str, Any], raw: bytes, source: str, received_at: datetime, sent_at: datetime | None
) -> dict[str, Any]:
    """A Segment message as an envelope of ``source`` (the write key's: a store may use a Segment SDK too)."""
    call = msg["type"]
    timestamp = parse_time(msg.get("timestamp") or msg.get("originalTimestamp"), "timestamp")
    sent = parse_time(msg.get("sentAt"), "sentAt") or sent_at
    context = _object(msg, "context")
    context_traits = _object(context, "traits", "context.")
    traits: dict[str, Any] = {**context_traits, **_object(msg, "traits")}
    out: dict[str, Any] = {
        "event_id": msg.get("messageId") or fallback_event_id(raw),
        "source": source,
        "occurred_at": corrected_time(timestamp, sent, received_at),
        "received_at": received_at,
        "anonymous_id": msg.get("anonymousId"),
        "customer_id": msg.get("userId"),
        "email": traits.get("email"),
        "phone": traits.get("phone"),
    }
    kept = marketing_context(context)
    if call != "identify" and (person := _person_traits(context_traits)):
        kept["traits"] = person  # an identify's context.traits are among its own traits already
    if kept:
        out["context"] = kept
    out.update(_call_fields(call, msg, traits, context_traits, out["anonymous_id"]))
    return out


def _call_fields(
    call: str, msg: dict[str, Any], traits: dict[str, Any], context_traits: dict[str, Any], anonymous_id: Any
) -> dict[str, Any]:
    """The type of the event and what each kind of Segment call carries besides the envelope."""
    if call == "identify":
        return {"type": "identify", "traits": traits}
    if call in ("page", "screen"):
        props = {k: msg[k] for k in ("name", "category") if isinstance(msg.get(k), str)}
        return {"type": call, "properties": {**_object(msg, "properties"), **props}}
    if call == "group":
        return _group_fields(msg, context_traits)
    if call == "alias":  # previousId is most often the anonymous id the visitor had before signing up
        return {"type": "alias", "anonymous_id": msg.get("previousId") or anonymous_id}
    if not msg.get("event"):
        raise NormalizeError("a track call needs an 'event' name", "event")
    return {"type": msg["event"], "properties": _object(msg, "properties")}


def _group_fields(msg: dict[str, Any], context_traits: dict[str, Any]) -> dict[str, Any]:
    """The group's traits describe the account, not the person: only context.traits identify them."""
    out: dict[str, Any] = {"type": "group", "traits": _object(msg, "traits")}
    out |= {"email": context_traits.get("email"), "phone": context_traits.get("phone")}
    if msg.get("groupId") is not None:  # else validation names the missing group_id
        out["group_id"] = str(msg["groupId"]) if isinstance(msg["groupId"], int) else msg["groupId"]
    return out


def marketing_context(context: dict[str, Any]) -> dict[str, Any]:
    """What crmhub keeps of a Segment ``context`` (see ``EventContext``): the campaign (``context.campaign``,
    else the utm_* parameters of ``context.page.url``), the referrer, the device type, locale, time zone,
    and the country the sender resolved from the IP. Values of the wrong shape are left out, not refused:
    the context is the SDK's, and a shop cannot fix it."""
    page = _dict(context.get("page"))
    device = _dict(context.get("device"))
    kept = {
        "campaign": _campaign(_dict(context.get("campaign")), _text(page.get("url"))),
        "referrer": _text(page.get("referrer"), REFERRER_CHARS) or _text(_dict(context.get("referrer")).get("url")),
        "device_type": _text(device.get("type")) or _device_from_agent(context),
        "locale": _text(context.get("locale")),
        "timezone": _text(context.get("timezone")),
        "country": _text(_dict(context.get("location")).get("country")),
    }
    return {name: value for name, value in kept.items() if value}


def _person_traits(context_traits: dict[str, Any]) -> dict[str, Any]:
    """``context.traits`` of a call other than identify (RudderStack and the mobile libraries repeat the
    user's traits on every call): the traits facet keeps them; email and phone are the envelope's."""
    return {name: value for name, value in context_traits.items() if name not in ("email", "phone")}


def _campaign(campaign: dict[str, Any], url: str | None) -> dict[str, str] | None:
    if not campaign and url and "utm_" in url:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        campaign = {name: query[f"utm_{name}"][0] for name in UTM_NAMES if f"utm_{name}" in query}
    given = {"source": _text(campaign.get("source")), "medium": _text(campaign.get("medium"))}
    given["name"] = _text(campaign.get("name")) or _text(campaign.get("campaign"))
    kept = {name: value for name, value in given.items() if value}
    return kept or None


def _device_from_agent(context: dict[str, Any]) -> str | None:
    """A browser's device type: from ``userAgentData.mobile`` (Chromium), else from the user agent."""
    hints = _dict(context.get("userAgentData"))
    agent = _text(context.get("userAgent")) or ""
    if _TABLET.search(agent):
        return "tablet"
    if isinstance(hints.get("mobile"), bool):
        return "mobile" if hints["mobile"] else "desktop"
    if not agent:
        return None
    return "mobile" if "Mobi" in agent else "desktop"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int = CONTEXT_CHARS) -> str | None:
    """A non-empty string, cut to ``limit`` characters (the limits of ``EventContext``)."""
    return value.strip()[:limit] or None if isinstance(value, str) else None


def _object(parent: dict[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NormalizeError(f"expected an object, got {type(value).__name__}", prefix + key)
    return value


def from_native(obj: dict[str, Any], source: str, received_at: datetime) -> dict[str, Any]:
    if obj.get("source", source) != source:
        raise NormalizeError(f"source {obj.get('source')!r} arrived on the {source} topic", "source")
    return {**obj, "source": source, "received_at": received_at}


@functools.lru_cache(maxsize=65_536)  # parsing costs ~25 us; a customer's number recurs with every identify
def to_e164(phone: str) -> str:
    """International numbers (with a leading +) to E.164; others lose their punctuation only, since
    without a country they cannot be placed (the same number then still matches itself)."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return _PHONE_JUNK.sub("", phone)
    if not phonenumbers.is_possible_number(number):
        return _PHONE_JUNK.sub("", phone)
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def clean_identifier(kind: str, value: str) -> str:
    """One identifier as crmhub compares it: trimmed, emails lower-cased, phones in E.164."""
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        return to_e164(value)
    return value


def shared_identifiers(pairs: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Configured shared (kind, value) pairs, cleaned like the identifiers of events so they match them."""
    return frozenset((kind, clean_identifier(kind, value)) for kind, value in pairs)


def _is_placeholder(kind: str, value: str) -> bool:
    """A value that identifies nobody: ``null``, ``0``, ``anonymous`` …, or a ``guest@…`` email."""
    lowered = value.lower()
    return lowered in PLACEHOLDERS or (kind == "email" and lowered.partition("@")[0] == "guest")


def normalize_identifiers(event: dict[str, Any], shared: frozenset[tuple[str, str]] = frozenset()) -> dict[str, Any]:
    """Clean identifiers (see clean_identifier) and drop placeholders and the ``shared`` (kind, value) pairs
    (in-store devices and cards many customers use): such values must never link two customers together.

    An identify's traits.email / traits.phone stand for the envelope's when it has none.
    """
    traits = event.get("traits")
    if isinstance(traits, dict):
        for kind in ("email", "phone"):
            if isinstance(traits.get(kind), str):
                traits[kind] = clean_identifier(kind, traits[kind])
            if not event.get(kind) and traits.get(kind):
                event[kind] = traits[kind]
    for kind in ("customer_id", "anonymous_id", "loyalty_id", "email", "phone"):
        value = event.get(kind)
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            continue  # left for validation to reject with a clear message
        value = clean_identifier(kind, value)
        event[kind] = None if _is_placeholder(kind, value) or (kind, value) in shared else value
    return event
