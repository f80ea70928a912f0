"""Schema versions of the event contract and the upcasters that lift older events to the current one.

Every event carries ``schema_version`` (missing means current). An event of an older version is lifted
one version at a time, as a plain dict before validation, so producers can move to a new version when
they like and topics written years ago still replay. A version newer than this hub knows is refused
(ingest dead-letters it with the reason) rather than guessed at.

Version history:
  1  the walking skeleton's contract.
  2  ``pos.sale`` takes ``line_items`` (was ``items``) and ``tenders`` (was one ``tender`` paying the
     whole ``total``); social messages and replies name the message ``message_id`` (was ``mention_id``);
     ``support.replied`` is ``support.complaint_responded``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SCHEMA_VERSION = 2

Doc = dict[str, Any]


class VersionError(ValueError):
    """The event's ``schema_version`` is not one this hub can read."""


def _renamed(props: Any, old: str, new: str) -> Any:
    if isinstance(props, dict) and old in props and new not in props:
        props = {**props, new: props[old]}
        del props[old]
    return props


def _v1_to_v2(event: Doc) -> Doc:
    kind, props = event.get("type"), event.get("properties")
    if kind == "pos.sale" and isinstance(props, dict):
        props = _renamed(props, "items", "line_items")
        if "tender" in props:
            props = {k: v for k, v in props.items() if k != "tender"}
            props["tenders"] = [{"method": event["properties"]["tender"], "amount": props.get("total")}]
    elif kind == "social.mention":
        props = _renamed(props, "mention_id", "message_id")
    elif kind == "support.replied":
        kind, props = "support.complaint_responded", _renamed(props, "mention_id", "message_id")
    return {**event, "type": kind, "properties": props} if props is not None else {**event, "type": kind}


# UPCASTERS[n] lifts an event of version n to version n + 1.
UPCASTERS: dict[int, Callable[[Doc], Doc]] = {1: _v1_to_v2}


def version_of(event: Doc) -> int:
    """The event's schema version (a JSON number or numeric string; missing = current)."""
    value = event.get("schema_version", SCHEMA_VERSION)
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not number.is_integer() or number < 1:
        raise VersionError(f"schema_version must be a whole number from 1 to {SCHEMA_VERSION}, got {value!r}")
    if number > SCHEMA_VERSION:
        raise VersionError(f"unsupported schema_version {number:g} (this hub reads up to {SCHEMA_VERSION})")
    return int(number)


def upcast(event: Doc) -> Doc:
    """The event lifted to the current version (raises VersionError for a version this hub cannot read)."""
    version = version_of(event)
    for step in range(version, SCHEMA_VERSION):
        event = UPCASTERS[step](event)
    return {**event, "schema_version": SCHEMA_VERSION}
