"""What a condition's result depends on: the key under which it can be remembered.

A condition reads fields; most read them only in comparisons with constants (``total_spent >= 500``,
``days_since(last_order_at) < 90``). For such a field the condition cannot tell two values apart that lie
on the same side of every constant, so the key holds, per constant, whether the value is below, equal to
or above it (for a time function: the whole units elapsed at ``now``, likewise). Other fields enter the
key with their whole value. Two profiles with the same key get the same result, whatever else differs,
so a result computed once serves every profile like it. A condition applying a time function other than
in such a comparison has no key: it is evaluated every time. Pure.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import rule_engine

from crmhub.core.conditions.clock import COMPARISONS, TIME_FUNCTIONS, TimeFunction, is_time_call, walk


@dataclass(frozen=True)
class KeyPart:
    field: str
    constants: tuple[Decimal, ...] = ()  # empty: the field's whole value
    unit: TimeFunction | None = None  # set: compare the units it counts since the field's time


KeySpec = tuple[KeyPart, ...]


@dataclass
class _Comparisons:
    """What the comparisons of a field (or of the time elapsed since it) with a number account for."""

    values: dict[str, set[Decimal]] = field(default_factory=lambda: defaultdict(set))
    elapsed: dict[tuple[str, TimeFunction], set[Decimal]] = field(default_factory=lambda: defaultdict(set))
    covered: set[int] = field(default_factory=set)  # the symbol nodes those comparisons account for

    def add(self, side: Any, number: Decimal, fields: frozenset[str]) -> None:
        if is_time_call(side) and isinstance(arg := side.arguments[0], rule_engine.ast.SymbolExpression):
            self.elapsed[(arg.name, TIME_FUNCTIONS[side.function.name])].add(number)
            self.covered.update((id(arg), id(side.function)))
        elif isinstance(side, rule_engine.ast.SymbolExpression) and side.name in fields:
            self.values[side.name].add(number)
            self.covered.add(id(side))


def _comparisons(rule: rule_engine.Rule, fields: frozenset[str]) -> _Comparisons:
    found = _Comparisons()
    for node in walk(rule.statement.expression):
        if isinstance(node, COMPARISONS):
            for side, other in ((node.left, node.right), (node.right, node.left)):
                if isinstance(other, rule_engine.ast.FloatExpression):
                    found.add(side, other.value, fields)
    return found


def key_spec(rule: rule_engine.Rule, fields: frozenset[str]) -> KeySpec | None:
    """The key of ``rule`` (reading ``fields``), or None when its result cannot be remembered."""
    found = _comparisons(rule, fields)
    symbols = [n for n in walk(rule.statement.expression) if isinstance(n, rule_engine.ast.SymbolExpression)]
    if any(n.name in TIME_FUNCTIONS and id(n) not in found.covered for n in symbols):
        return None
    parts = [KeyPart(name, tuple(sorted(elapsed)), unit) for (name, unit), elapsed in sorted(found.elapsed.items())]
    for name in sorted(fields):
        uses = [n for n in symbols if n.name == name]
        if uses and all(id(n) in found.covered for n in uses) and name in found.values:
            parts.append(KeyPart(name, tuple(sorted(found.values[name]))))
        elif any(id(n) not in found.covered for n in uses):
            parts.append(KeyPart(name))  # read some other way: its whole value
    return tuple(parts)


def _sides(value: Any, constants: Sequence[Decimal]) -> tuple[int, bool] | None:
    """Where ``value`` lies among the (sorted) constants: how many are below it, and whether it equals
    the next; the same for every value on the same side of each constant."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    below = bisect_left(constants, value)
    return below, below < len(constants) and constants[below] == value


def memo_key(spec: KeySpec, view: dict[str, Any], values: dict[str, bytes], now: datetime) -> tuple[Any, ...]:
    """The key of a view at ``now``; ``values``: the view's fields serialised (for whole values)."""
    key: list[Any] = []
    for part in spec:
        value = view[part.field]
        if part.unit is not None:
            elapsed = part.unit.elapsed(value, now) if isinstance(value, datetime) else None
            key.append(None if elapsed is None else _sides(elapsed, part.constants))
        elif part.constants:
            sides = _sides(value, part.constants)
            key.append(values[part.field] if sides is None and value is not None else sides)
        else:
            key.append(values[part.field])
    return tuple(key)
