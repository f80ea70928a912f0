"""Pure segment logic: the segment language (rule-engine expressions over the typed profile view of
:mod:`services.segmenter.fields`), definitions (YAML), and evaluation.

A condition may name only the fields of :data:`FIELD_TYPES` (an unknown field or a type mismatch is an
error when the segment is defined, never later), the time functions of :mod:`services.segmenter.clock`,
and no built-in symbol that reads the clock (``$now``, ``$today``): time comes in through the view, so
evaluation is a pure function of (profile, now).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import rule_engine
import yaml
from rule_engine.suggestions import suggest_symbol

from crmhub.core.errors import ConfigError
from services.segmenter.clock import TIME_FUNCTIONS, ClockSpec, clock_spec, time_functions, walk
from services.segmenter.fields import FIELD_TYPES
from services.segmenter.memo import KeySpec, key_spec

SHIPPED = "segments.yaml"
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")

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
        except (rule_engine.EngineError, TypeError):  # a null or missing value compared: false, never a crash
            return False  # (rule-engine raises TypeError for ``x in null``, found by the fuzz test)

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


def evaluate(defs: list[SegmentDef], view: dict[str, Any], now: datetime) -> set[str]:
    """The names of the segments of ``defs`` the view is in at ``now``."""
    scope = {**view, **time_functions(now)}
    return {d.name for d in defs if d.matches(scope)}


def membership_changes(before: set[str], after: set[str]) -> tuple[list[str], list[str]]:
    """(entered, exited), sorted for a stable output order."""
    return sorted(after - before), sorted(before - after)
