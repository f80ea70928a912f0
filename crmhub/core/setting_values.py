"""The settings given as text (lists, pairs, tables in one environment variable) and their parsers: each
turns the text into the value the services use, or raises ValueError naming the bad part. Settings checks
every such field with its parser at startup (:data:`PARSERS`), so a service never meets a bad one later.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Literal, get_args

from schemas.events import IDENTIFIER_KINDS

Source = Literal["web", "pos", "payment", "social", "support", "catalog"]  # a raw topic each
SOURCES: tuple[str, ...] = get_args(Source)


def parse_write_keys(value: str) -> dict[str, str]:
    """``"k1:web,k2:pos"`` -> ``{"k1": "web", "k2": "pos"}``; raises ValueError naming the bad pair."""
    keys: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in value.split(","))):
        key, sep, source = pair.partition(":")
        if not sep or not key or source not in SOURCES:
            raise ValueError(f"write key {pair!r} must look like KEY:SOURCE with SOURCE one of {SOURCES}")
        keys[key] = source
    return keys


def parse_cors_origins(value: str) -> list[str]:
    """``"https://a.example, https://b.example"`` -> the list; ``"*"`` -> ``["*"]`` (any origin)."""
    origins = [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
    for origin in origins:
        scheme, sep, host = origin.partition("://")
        if origin != "*" and (scheme not in ("http", "https") or not sep or not host or "/" in host):
            raise ValueError(f"CORS origin {origin!r} must be '*' or look like https://host[:port] (no path)")
    return origins


def _items(value: str) -> list[str]:
    return [item for item in (p.strip() for p in value.split(",")) if item]


def parse_identity_priority(value: str) -> tuple[str, ...]:
    """``"email,customer_id,…"`` -> the kinds in that order; raises ValueError unless every kind is there once."""
    kinds = tuple(_items(value))
    if sorted(kinds) != sorted(IDENTIFIER_KINDS):
        raise ValueError(f"identity priority {value!r} must name each of {', '.join(IDENTIFIER_KINDS)} exactly once")
    return kinds


def parse_identity_limits(value: str) -> dict[str, int]:
    """``"customer_id:1,email:5"`` -> ``{"customer_id": 1, "email": 5}``; raises ValueError naming the bad pair."""
    limits: dict[str, int] = {}
    for pair in _items(value):
        kind, _, most = pair.partition(":")
        if kind not in IDENTIFIER_KINDS or not most.isdigit() or int(most) < 1 or kind in limits:
            raise ValueError(
                f"identity limit {pair!r} must look like KIND:MAX with KIND one of {IDENTIFIER_KINDS} "
                "(each once) and MAX a whole number of at least 1"
            )
        limits[kind] = int(most)
    return limits


def parse_shared_ids(value: str) -> frozenset[tuple[str, str]]:
    """``"kiosk-7,loyalty_id:STAFF"`` -> ``{("anonymous_id", "kiosk-7"), ("loyalty_id", "STAFF")}``."""
    shared = set()
    for item in _items(value):
        kind, sep, rest = item.partition(":")
        if not (sep and kind in IDENTIFIER_KINDS):
            kind, rest = "anonymous_id", item
        if not rest.strip():
            raise ValueError(f"shared id {item!r} has no value")
        shared.add((kind, rest.strip()))
    return frozenset(shared)


def parse_loyalty_rates(value: str) -> dict[str, Decimal]:
    """``"JPY:0.01,KWD:2"`` -> ``{"JPY": Decimal("0.01"), "KWD": Decimal(2)}``; raises ValueError naming the
    bad pair."""
    rates: dict[str, Decimal] = {}
    for pair in _items(value):
        code, _, rate = pair.partition(":")
        try:
            points = Decimal(rate.strip())
        except InvalidOperation:
            points = Decimal(-1)
        code = code.strip().upper()
        if len(code) != 3 or not code.isalpha() or not points.is_finite() or points < 0 or code in rates:
            raise ValueError(f"loyalty rate {pair!r} must look like CUR:POINTS with CUR a currency code (each once)")
        rates[code] = points
    return rates


def parse_loyalty_tiers(value: str) -> tuple[tuple[str, int], ...]:
    """``"member:0,gold:2000"`` -> ``(("member", 0), ("gold", 2000))``, lowest threshold first."""
    tiers: dict[str, int] = {}
    for pair in _items(value):
        name, _, points = pair.partition(":")
        name = name.strip()
        if not name or not points.strip().isdigit() or name in tiers:
            raise ValueError(f"loyalty tier {pair!r} must look like NAME:POINTS, POINTS a whole number (names once)")
        tiers[name] = int(points)
    if len(set(tiers.values())) != len(tiers):
        raise ValueError(f"loyalty tiers {value!r} must have different thresholds")
    return tuple(sorted(tiers.items(), key=lambda t: t[1]))


def parse_trait_survivorship(value: str) -> dict[str, tuple[str, ...]]:
    """``"name:crm>web,*:latest"`` -> ``{"name": ("crm", "web"), "*": ("latest",)}``: per trait, either
    ``("latest",)``, ``("first",)`` or the sources in rank order, best first."""
    rules: dict[str, tuple[str, ...]] = {}
    for pair in _items(value):
        trait, _, rule = pair.partition(":")
        trait, rule = trait.strip(), rule.strip()
        ranked = tuple(s.strip() for s in rule.split(">"))
        ok = rule in ("latest", "first") or (
            all(s in (*SOURCES, "crm") for s in ranked) and len(set(ranked)) == len(ranked)
        )
        if not trait or not ok or trait in rules:
            raise ValueError(
                f"trait survivorship {pair!r} must look like TRAIT:latest, TRAIT:first or TRAIT:SOURCE>SOURCE… "
                f"with sources among {(*SOURCES, 'crm')} (each trait once)"
            )
        rules[trait] = ranked
    return rules


PRIORITIES = ("high", "normal", "low")


def parse_complaint_sla(value: str) -> dict[str, float]:
    """``"high:900,normal:3600,low:14400"`` -> seconds per priority; every priority once, each above 0."""
    sla: dict[str, float] = {}
    for pair in _items(value):
        priority, _, seconds = pair.partition(":")
        try:
            limit = float(seconds)
        except ValueError:
            limit = 0.0
        if priority.strip() not in PRIORITIES or priority.strip() in sla or not limit > 0:
            raise ValueError(
                f"complaint SLA {pair!r} must look like PRIORITY:SECONDS (above 0), PRIORITY one of {PRIORITIES}"
            )
        sla[priority.strip()] = limit
    if sorted(sla) != sorted(PRIORITIES):
        raise ValueError(f"complaint SLA {value!r} must give seconds for each of {', '.join(PRIORITIES)}")
    return sla


# the services that run as consumer groups, so as several processes each (``--scale``); the API runs once: it
# owns the collector's port and the intake journal in the data directory, which one forwarder empties
SCALABLE = ("ingest", "profile", "segmenter", "notifier")
MAX_INSTANCES = 32


def parse_scale(value: str) -> dict[str, int]:
    """``"ingest=2,profile=3"`` -> instances per service, every scalable service present (1 unless given);
    raises ValueError naming the bad pair."""
    counts = dict.fromkeys(SCALABLE, 1)
    given: set[str] = set()
    for pair in _items(value):
        service, sep, number = (part.strip() for part in pair.partition("="))
        if service == "api":
            raise ValueError("scale: the API runs as one instance (it owns the collector's port and intake journal)")
        if not sep or service not in SCALABLE or service in given:
            raise ValueError(
                f"scale {pair!r} must look like SERVICE=N with SERVICE one of {', '.join(SCALABLE)} (each once)"
            )
        if not number.isdigit() or not 1 <= int(number) <= MAX_INSTANCES:
            raise ValueError(
                f"scale {pair!r}: the number of {service} instances must be a whole number from 1 to {MAX_INSTANCES}"
            )
        counts[service] = int(number)
        given.add(service)
    return counts


PARSERS: dict[str, Callable[[str], object]] = {
    "write_keys": parse_write_keys,
    "cors_origins": parse_cors_origins,
    "identity_priority": parse_identity_priority,
    "identity_limits": parse_identity_limits,
    "shared_ids": parse_shared_ids,
    "loyalty_rates": parse_loyalty_rates,
    "loyalty_tiers": parse_loyalty_tiers,
    "trait_survivorship": parse_trait_survivorship,
    "complaint_sla": parse_complaint_sla,
}
