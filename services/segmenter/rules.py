"""Pure segment logic: the segment language (rule-engine expressions over a typed profile view), the view
itself, definitions (YAML), and evaluation.

A condition may name only the fields of :data:`FIELD_TYPES` (an unknown field or a type mismatch is an
error when the segment is defined, never later), the time functions of :mod:`services.segmenter.clock`,
and no built-in symbol that reads the clock (``$now``, ``$today``): time comes in through the view, so
evaluation is a pure function of (profile, now).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import rule_engine
import yaml
from rule_engine import DataType
from rule_engine.suggestions import suggest_symbol

from crmhub.core.errors import ConfigError
from services.segmenter.clock import TIME_FUNCTIONS, ClockSpec, clock_spec, time_functions, walk
from services.segmenter.memo import KeySpec, key_spec

SHIPPED = "segments.yaml"
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")

_NUMBER, _TIME, _TEXT = DataType.FLOAT, DataType.DATETIME, DataType.STRING
CONSENT_CHANNELS = ("email", "sms", "phone", "push", "post")


CONTEXT_FIELDS = (
    *("first_touch_source", "first_touch_medium", "first_touch_campaign"),
    *("last_touch_source", "last_touch_medium", "last_touch_campaign"),
    *("referrer", "device_type", "locale", "timezone", "ip_country"),
)


def _get(obj: dict[str, Any], name: str) -> Any:
    return obj.get(name)


FIELD_TYPES: dict[str, Any] = {
    "profile_id": _TEXT,
    "version": _NUMBER,
    "created_at": _TIME,
    "updated_at": _TIME,
    # orders and money (money in the profile's currency)
    "order_count": _NUMBER,
    "web_orders": _NUMBER,
    "pos_orders": _NUMBER,
    "cancelled_orders": _NUMBER,
    "refund_count": _NUMBER,
    "return_count": _NUMBER,
    "total_spent": _NUMBER,
    "net_revenue": _NUMBER,
    "refunded_total": _NUMBER,
    "average_order_value": _NUMBER,
    "currency": _TEXT,
    "first_order_at": _TIME,
    "last_order_at": _TIME,
    "top_categories": DataType.ARRAY(_TEXT),
    "top_products": DataType.ARRAY(_TEXT),
    # browsing and cart
    "product_views": _NUMBER,
    "last_viewed_at": _TIME,
    "cart_items": _NUMBER,
    "cart_value": _NUMBER,
    "cart_updated_at": _TIME,
    # support and payments
    "open_complaints": _NUMBER,
    "complaints_total": _NUMBER,
    "complaints_answered": _NUMBER,
    "payment_failures": _NUMBER,
    "last_payment_failure_at": _TIME,
    "chargebacks": _NUMBER,
    "preferred_payment_method": _TEXT,
    # loyalty and scores
    "loyalty_tier": _TEXT,
    "loyalty_points": _NUMBER,
    "loyalty_earned": _NUMBER,
    "rfm": DataType.OBJECT(
        "rfm", {"recency": _NUMBER, "frequency": _NUMBER, "monetary": _NUMBER, "score": _TEXT}, accessor=_get
    ),
    # who the customer is
    "consent": DataType.OBJECT("consent", dict.fromkeys(CONSENT_CHANNELS, DataType.BOOLEAN), accessor=_get),
    "age_band": _TEXT,
    "gender": _TEXT,
    "city": _TEXT,
    "region": _TEXT,
    "country": _TEXT,
    "age": _NUMBER,
    "children": _NUMBER,
    "traits": DataType.MAPPING(_TEXT, DataType.UNDEFINED),  # each value as its JSON type: text, number, bool…
    # how the customer comes (the context of tracking calls) and the accounts they belong to
    **dict.fromkeys(CONTEXT_FIELDS, _TEXT),
    "groups": DataType.ARRAY(_TEXT),
    **{name: fn.data_type for name, fn in TIME_FUNCTIONS.items()},
}
BUILTINS_REFUSED = ("$now", "$today")  # they read the wall clock; use days_since/hours_since instead


class SegmentError(ConfigError):
    """A segment definition is wrong; the message names the segment and what is wrong."""


@dataclass(frozen=True)
class SegmentDef:
    name: str
    description: str
    condition: str
    rule: rule_engine.Rule
    fields: frozenset[str]  # the view fields the condition reads
    clock: ClockSpec  # when its truth can change with time alone (empty: never)
    key: KeySpec | None  # what its result depends on (None: evaluate it every time)

    def matches(self, view: dict[str, Any]) -> bool:
        try:
            return bool(self.rule.matches(view))
        except rule_engine.EngineError:  # a null or missing value compared: false, never a crash
            return False

    @property
    def fingerprint(self) -> str:
        """Changes whenever the condition does: membership computed under another fingerprint is stale."""
        return hashlib.sha256(self.condition.encode()).hexdigest()[:16]


def compile_segment(name: str, condition: str, description: str = "") -> SegmentDef:
    """Compile and check a definition; raises :class:`SegmentError` naming the segment and the error."""
    if not name or not set(name) <= NAME_CHARS or len(name) > 64:
        raise SegmentError(f"segment name {name!r} must be 1-64 characters of a-z, 0-9, _ and -")
    read: set[str] = set()

    def resolve_type(symbol: str) -> Any:
        if symbol not in FIELD_TYPES:
            raise rule_engine.SymbolResolutionError(symbol, suggestion=suggest_symbol(symbol, list(FIELD_TYPES)))
        read.add(symbol)
        return FIELD_TYPES[symbol]

    context = rule_engine.Context(resolver=rule_engine.resolve_item, type_resolver=resolve_type, default_value=None)
    try:
        rule = rule_engine.Rule(condition, context=context)
    except rule_engine.SymbolResolutionError as exc:
        hint = f" (did you mean {exc.suggestion!r}?)" if exc.suggestion else ""
        raise SegmentError(f"segment {name!r}: unknown field {exc.symbol_name!r} in {condition!r}{hint}") from exc
    except rule_engine.errors.ObjectAttributeError as exc:
        hint = f" (did you mean {exc.suggestion!r}?)" if exc.suggestion else ""
        raise SegmentError(f"segment {name!r}: bad condition {condition!r}: {exc.message}{hint}") from exc
    except rule_engine.EngineError as exc:
        raise SegmentError(f"segment {name!r}: bad condition {condition!r}: {exc.message}") from exc
    refused = [b for b in BUILTINS_REFUSED if b in _builtins_used(rule)]
    if refused:
        raise SegmentError(
            f"segment {name!r}: {refused[0]} reads the wall clock; use days_since(field) or hours_since(field)"
        )
    try:
        clock = clock_spec(rule)
    except ValueError as exc:
        raise SegmentError(f"segment {name!r}: bad condition {condition!r}: {exc}") from exc
    fields = frozenset(read - set(TIME_FUNCTIONS))
    return SegmentDef(name, description, condition, rule, fields, clock, key_spec(rule, fields))


def _builtins_used(rule: rule_engine.Rule) -> set[str]:
    return {
        f"${node.name}"
        for node in walk(rule.statement.expression)
        if isinstance(node, rule_engine.ast.SymbolExpression) and node.scope == "built-in"
    }


def parse_definitions(text: str, origin: str) -> list[SegmentDef]:
    """The definitions of a YAML document ``{segments: [{name, description, condition}, …]}``."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"segment file {origin}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("segments") or [], list):
        raise ConfigError(f"segment file {origin}: expected a mapping with a 'segments' list")
    defs = []
    for i, item in enumerate(doc.get("segments") or []):
        if not isinstance(item, dict) or not item.get("name") or not item.get("condition"):
            raise ConfigError(f"segment file {origin}: entry {i} needs a name and a condition")
        try:
            defs.append(compile_segment(str(item["name"]), str(item["condition"]), str(item.get("description", ""))))
        except SegmentError as exc:
            raise ConfigError(f"segment file {origin}: {exc}") from exc
    names = [d.name for d in defs]
    if len(set(names)) != len(names):
        raise ConfigError(f"segment file {origin}: duplicate segment names")
    return defs


def load_definitions(path: Path | None = None) -> list[SegmentDef]:
    """The definitions of the segment file ``path``, or of the shipped library."""
    if path is None:
        return parse_definitions(resources.files("services.segmenter").joinpath(SHIPPED).read_text(), SHIPPED)
    return parse_definitions(path.read_text(), str(path))


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _number(value: Any) -> Decimal | int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _consent(consent: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Channel -> whether its marketing decision (or, without one, any decision) grants."""
    granted = dict.fromkeys(CONSENT_CHANNELS, False)
    for channel, purposes in consent.items():
        decision = purposes.get("marketing") or next(iter(purposes.values()), None)
        granted[channel] = bool(decision and decision.get("granted"))
    return granted


def profile_view(profile: dict[str, Any]) -> dict[str, Any]:
    """The typed fields of :data:`FIELD_TYPES` (time functions aside), from a profile as published on
    crm.profile-changes.v1 (JSON)."""
    traits = profile.get("traits") or {}
    cart = profile.get("cart") or {}
    demographics = profile.get("demographics") or {}
    loyalty = profile.get("loyalty") or {}
    rfm = profile.get("rfm") or {}
    views = profile.get("recent_views") or []
    return {
        "profile_id": profile["profile_id"],
        "version": profile.get("version", 0),
        "created_at": _time(profile.get("created_at")),
        "updated_at": _time(profile.get("updated_at")),
        "order_count": profile.get("order_count", 0),
        "web_orders": profile.get("web_orders", 0),
        "pos_orders": profile.get("pos_orders", 0),
        "cancelled_orders": profile.get("cancelled_orders", 0),
        "refund_count": profile.get("refund_count", 0),
        "return_count": profile.get("return_count", 0),
        "total_spent": Decimal(str(profile.get("total_spent", "0"))),
        "net_revenue": Decimal(str(profile.get("net_revenue", "0"))),
        "refunded_total": Decimal(str(profile.get("refunded_total", "0"))),
        "average_order_value": _number(profile.get("average_order_value")),
        "currency": profile.get("currency"),
        "first_order_at": _time(profile.get("first_order_at")),
        "last_order_at": _time(profile.get("last_order_at")),
        "top_categories": tuple(profile.get("top_categories") or ()),
        "top_products": tuple(profile.get("top_products") or ()),
        "product_views": profile.get("product_views", 0),
        "last_viewed_at": _time(views[0].get("at")) if views else None,
        "cart_items": sum(int(i.get("quantity", 0)) for i in cart.get("items") or []),
        "cart_value": Decimal(str(cart.get("value", "0"))),
        "cart_updated_at": _time(cart.get("updated_at")),
        "open_complaints": len(profile.get("open_complaints") or []),
        "complaints_total": profile.get("complaints_total", 0),
        "complaints_answered": profile.get("complaints_answered", 0),
        "payment_failures": profile.get("payment_failures", 0),
        "last_payment_failure_at": _time(profile.get("last_payment_failure_at")),
        "chargebacks": profile.get("chargebacks", 0),
        "preferred_payment_method": profile.get("preferred_payment_method"),
        "loyalty_tier": loyalty.get("tier"),
        "loyalty_points": loyalty.get("balance", 0),
        "loyalty_earned": loyalty.get("earned", 0),
        "rfm": {k: rfm.get(k) for k in ("recency", "frequency", "monetary", "score")},
        "consent": _consent(profile.get("consent") or {}),
        "age_band": demographics.get("age_band"),
        "gender": demographics.get("gender"),
        "city": demographics.get("city") or traits.get("city"),
        "region": demographics.get("region"),
        "country": demographics.get("country") or traits.get("country"),
        "age": _number(traits.get("age")),
        "children": _number(traits.get("children")),
        "traits": traits,
        **_context_view(profile.get("context") or {}),
        "groups": tuple(profile.get("groups") or ()),
    }


def _context_view(context: dict[str, Any]) -> dict[str, Any]:
    first, last = context.get("first_touch") or {}, context.get("last_touch") or {}
    view = {f"first_touch_{name}": first.get(name) for name in ("source", "medium", "campaign")}
    view |= {f"last_touch_{name}": last.get(name) for name in ("source", "medium", "campaign")}
    view |= {name: context.get(name) for name in ("referrer", "device_type", "locale", "timezone")}
    view["ip_country"] = context.get("country")
    return view


def evaluate(defs: list[SegmentDef], view: dict[str, Any], now: datetime) -> set[str]:
    """The names of the segments of ``defs`` the view is in at ``now``."""
    scope = {**view, **time_functions(now)}
    return {d.name for d in defs if d.matches(scope)}


def membership_changes(before: set[str], after: set[str]) -> tuple[list[str], list[str]]:
    """(entered, exited), sorted for a stable output order."""
    return sorted(after - before), sorted(before - after)
