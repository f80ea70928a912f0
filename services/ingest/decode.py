"""Pure decoding of one raw input: bytes in, exactly one Event or one Rejection out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.events import EVENT_TYPES, Event, ProductUpserted, validate_event
from schemas.versions import VersionError, upcast
from services.ingest.normalize import (
    NormalizeError,
    from_native,
    from_segment,
    is_segment_message,
    normalize_identifiers,
)

INTERNAL_TYPES = frozenset({"profile.merged"})
CATALOG = "catalog"  # the source of product.upserted, and of nothing else: it names no customer


@dataclass(frozen=True)
class RawInput:
    source: str
    value: bytes
    received_at: datetime
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Rejection:
    reason: str
    location: str


def decode_raw(raw: RawInput, shared: frozenset[tuple[str, str]] = frozenset()) -> Event | Rejection:
    """Never raises: input this code did not foresee still becomes a Rejection (poison never blocks).

    ``shared`` identifiers (in-store devices, see normalize_identifiers) are dropped like placeholders."""
    try:
        return _decode(raw, shared)
    except Exception as exc:  # the last line of defence of a partition
        return Rejection(f"unexpected {type(exc).__name__} while decoding: {exc}", "body")


def _decode(raw: RawInput, shared: frozenset[tuple[str, str]]) -> Event | Rejection:
    try:
        obj = orjson.loads(raw.value)
    except orjson.JSONDecodeError as exc:
        return Rejection(f"invalid JSON: {exc}", "body")
    if not isinstance(obj, dict):
        return Rejection(f"expected a JSON object, got {type(obj).__name__}", "body")
    try:
        if is_segment_message(obj):
            envelope = from_segment(obj, raw.value, raw.source, raw.received_at, raw.sent_at)
        else:
            envelope = from_native(obj, raw.source, raw.received_at)
    except NormalizeError as exc:
        return Rejection(exc.reason, exc.location)
    if isinstance(envelope.get("type"), str) and envelope["type"] in INTERNAL_TYPES:
        return Rejection(f"{envelope['type']} events are made by crmhub, not accepted as input", "type")
    return validate(normalize_identifiers(envelope, shared))


def validate(envelope: dict[str, Any]) -> Event | Rejection:
    try:
        envelope = upcast(envelope)
    except VersionError as exc:
        return Rejection(str(exc), "schema_version")
    if not isinstance(envelope.get("type"), str) or envelope["type"] not in EVENT_TYPES:
        return Rejection(f"unknown event type {envelope.get('type')!r}", "type")
    try:
        event = validate_event(envelope)
    except ValidationError as exc:
        return rejection_from(exc)
    if isinstance(event, ProductUpserted) != (event.source == CATALOG):
        return Rejection(f"{event.type} does not belong on the {event.source} topic (products go to catalog)", "type")
    if not event.identifiers() and not isinstance(event, ProductUpserted):
        return Rejection("the event carries no usable customer identifier", "identifiers")
    return event


def rejection_from(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False)
    first = errors[0]
    # the discriminated union puts the type tag first in the location; drop it
    loc = [str(p) for p in first["loc"]]
    if loc and loc[0] in EVENT_TYPES:
        loc = loc[1:]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Rejection(f"{first['msg']}{more}", ".".join(loc) or "body")
