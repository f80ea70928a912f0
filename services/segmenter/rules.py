"""Pure segment logic: definitions (rule-engine expressions), the profile view they read, evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import rule_engine
import yaml

from crmhub.errors import ConfigError

_CONTEXT = rule_engine.Context(resolver=rule_engine.resolve_item, default_value=None)
SHIPPED = "segments.yaml"


@dataclass(frozen=True)
class SegmentDef:
    name: str
    description: str
    condition: str
    rule: rule_engine.Rule

    def matches(self, view: dict[str, Any]) -> bool:
        try:
            return bool(self.rule.matches(view))
        except rule_engine.EvaluationError:
            return False


def compile_segment(name: str, condition: str, description: str = "") -> SegmentDef:
    try:
        rule = rule_engine.Rule(condition, context=_CONTEXT)
    except rule_engine.EngineError as exc:
        raise ConfigError(f"segment {name!r}: bad condition {condition!r}: {exc.message}") from exc
    return SegmentDef(name, description, condition, rule)


def load_definitions(path: Path | None = None) -> list[SegmentDef]:
    text = path.read_text() if path else resources.files("services.segmenter").joinpath(SHIPPED).read_text()
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"segment file {path or SHIPPED}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("segments") or [], list):
        raise ConfigError(f"segment file {path or SHIPPED}: expected a mapping with a 'segments' list")
    defs = []
    for i, item in enumerate(doc.get("segments") or []):
        if not isinstance(item, dict) or not item.get("name") or not item.get("condition"):
            raise ConfigError(f"segment file {path or SHIPPED}: entry {i} needs a name and a condition")
        defs.append(compile_segment(str(item["name"]), str(item["condition"]), str(item.get("description", ""))))
    names = [d.name for d in defs]
    if len(set(names)) != len(names):
        raise ConfigError(f"segment file {path or SHIPPED}: duplicate segment names")
    return defs


def profile_view(profile: dict[str, Any]) -> dict[str, Any]:
    """The flat fields segment conditions read, from a profile as published on crm.profiles.v1."""
    traits = profile.get("traits") or {}
    cart = profile.get("cart") or {}
    return {
        "profile_id": profile["profile_id"],
        "order_count": profile.get("order_count", 0),
        "web_orders": profile.get("web_orders", 0),
        "pos_orders": profile.get("pos_orders", 0),
        "total_spent": Decimal(str(profile.get("total_spent", "0"))),
        "open_complaints": len(profile.get("open_complaints") or []),
        "complaints_total": profile.get("complaints_total", 0),
        "payment_failures": profile.get("payment_failures", 0),
        "cart_items": sum(int(i.get("quantity", 0)) for i in cart.get("items") or []),
        "cart_value": Decimal(str(cart.get("value", "0"))),
        "age": traits.get("age"),
        "children": traits.get("children"),
        "city": traits.get("city"),
        "country": traits.get("country"),
        "gender": traits.get("gender"),
        "traits": traits,
    }


def evaluate(defs: list[SegmentDef], view: dict[str, Any]) -> set[str]:
    return {d.name for d in defs if d.matches(view)}


def membership_changes(before: set[str], after: set[str]) -> tuple[list[str], list[str]]:
    """(entered, exited), sorted for a stable output order."""
    return sorted(after - before), sorted(before - after)
