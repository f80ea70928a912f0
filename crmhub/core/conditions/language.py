"""The segment language: rule-engine expressions over the typed profile view of
:mod:`crmhub.core.conditions.fields`, compiled and checked once.

A condition may name only the fields of :data:`FIELD_TYPES` (an unknown field or a type mismatch is an
error when the condition is defined, never later), the time functions of :mod:`crmhub.core.conditions.clock`,
and no built-in symbol that reads the clock (``$now``, ``$today``): time comes in through the view, so
evaluation is a pure function of (profile, now). :func:`compile_condition` checks a bare condition (a
journey's branch, exit criterion or event filter); :func:`compile_segment` a named segment. A condition
over something other than a profile (an event's properties) is compiled with ``types=None``: any name,
checked only for syntax.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rule_engine
from rule_engine.suggestions import suggest_symbol

from crmhub.core.conditions.clock import TIME_FUNCTIONS, ClockSpec, clock_spec, walk
from crmhub.core.conditions.compiler import Test, compile_test
from crmhub.core.conditions.fields import FIELD_TYPES
from crmhub.core.errors import ConfigError

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")

BUILTINS_REFUSED = ("$now", "$today")  # they read the wall clock; use days_since/hours_since instead


class ConditionError(ConfigError):
    """A condition does not compile; the message says what is wrong (its owner adds whose it is)."""


class SegmentError(ConfigError):
    """A segment definition is wrong; the message names the segment and what is wrong."""


@dataclass(frozen=True)
class Condition:
    text: str
    rule: rule_engine.Rule
    fields: frozenset[str]  # the view fields the condition reads
    clock: ClockSpec  # when its truth can change with time alone (empty: never)
    test: Test  # the condition compiled (:mod:`crmhub.core.conditions.compiler`)
    native: bool  # compiled to Python (False: rule-engine interprets it)

    def holds(self, view: Mapping[str, Any], now: datetime) -> bool:
        """Whether the condition is true of ``view`` (a profile view, or an event's properties for an
        untyped condition) at ``now``; a null or missing value compared makes it false, never an error."""
        return self.test(view, now)


@dataclass(frozen=True)
class SegmentDef:
    name: str
    description: str
    condition: str
    rule: rule_engine.Rule
    fields: frozenset[str]  # the view fields the condition reads
    clock: ClockSpec  # when its truth can change with time alone (empty: never)
    test: Test  # the condition compiled (:mod:`crmhub.core.conditions.compiler`)
    native: bool  # compiled to Python (False: rule-engine interprets it)

    def matches(self, view: Mapping[str, Any], now: datetime) -> bool:
        """Whether the profile ``view`` is in the segment at ``now``."""
        return self.test(view, now)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the condition does: membership computed under another fingerprint is stale."""
        return hashlib.sha256(self.condition.encode()).hexdigest()[:16]


def compile_condition(condition: str, types: Mapping[str, Any] | None = FIELD_TYPES) -> Condition:
    """Compile and check ``condition`` over fields of ``types`` (None: any name, untyped); raises
    :class:`ConditionError` saying what is wrong."""
    read: set[str] = set()

    def resolve_type(symbol: str) -> Any:
        if types is None:
            return rule_engine.DataType.UNDEFINED
        if symbol not in types:
            raise rule_engine.SymbolResolutionError(symbol, suggestion=suggest_symbol(symbol, list(types)))
        read.add(symbol)
        return types[symbol]

    context = rule_engine.Context(resolver=rule_engine.resolve_item, type_resolver=resolve_type, default_value=None)
    try:
        rule = rule_engine.Rule(condition, context=context)
    except rule_engine.SymbolResolutionError as exc:
        hint = f" (did you mean {exc.suggestion!r}?)" if exc.suggestion else ""
        raise ConditionError(f"unknown field {exc.symbol_name!r} in {condition!r}{hint}") from exc
    except rule_engine.errors.ObjectAttributeError as exc:
        hint = f" (did you mean {exc.suggestion!r}?)" if exc.suggestion else ""
        raise ConditionError(f"bad condition {condition!r}: {exc.message}{hint}") from exc
    except rule_engine.EngineError as exc:
        raise ConditionError(f"bad condition {condition!r}: {exc.message}") from exc
    refused = [b for b in BUILTINS_REFUSED if b in _builtins_used(rule)]
    if refused:
        raise ConditionError(f"{refused[0]} reads the wall clock; use days_since(field) or hours_since(field)")
    try:
        clock = clock_spec(rule)
    except ValueError as exc:
        raise ConditionError(f"bad condition {condition!r}: {exc}") from exc
    test, native = compile_test(rule, typed=types is not None)
    return Condition(condition, rule, frozenset(read - set(TIME_FUNCTIONS)), clock, test, native)


def compile_segment(name: str, condition: str, description: str = "") -> SegmentDef:
    """Compile and check a definition; raises :class:`SegmentError` naming the segment and the error."""
    if not name or not set(name) <= NAME_CHARS or len(name) > 64:
        raise SegmentError(f"segment name {name!r} must be 1-64 characters of a-z, 0-9, _ and -")
    try:
        c = compile_condition(condition)
    except ConditionError as exc:
        raise SegmentError(f"segment {name!r}: {exc}") from exc
    return SegmentDef(name, description, condition, c.rule, c.fields, c.clock, c.test, c.native)


def _builtins_used(rule: rule_engine.Rule) -> set[str]:
    return {
        f"${node.name}"
        for node in walk(rule.statement.expression)
        if isinstance(node, rule_engine.ast.SymbolExpression) and node.scope == "built-in"
    }


def evaluate(defs: list[SegmentDef], view: dict[str, Any], now: datetime) -> set[str]:
    """The names of the segments of ``defs`` the view is in at ``now``."""
    return {d.name for d in defs if d.matches(view, now)}
