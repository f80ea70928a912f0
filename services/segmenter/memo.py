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

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import rule_engine

from services.segmenter.clock import COMPARISONS, TIME_FUNCTIONS, is_time_call, walk


@dataclass(frozen=True)
class KeyPart:
    field: str
    constants: tuple[Decimal, ...] = ()  # empty: the field's whole value
    unit: timedelta | None = None  # set: compare the units elapsed since the field's time


KeySpec = tuple[KeyPart, ...]


def key_spec(rule: rule_engine.Rule, fields: frozenset[str]) -> KeySpec | None:  # noqa: C901
    """The key of ``rule`` (reading ``fields``), or None when its result cannot be remembered."""
    value_constants: dict[str, set[Decimal]] = defaultdict(set)
    elapsed_constants: dict[tuple[str, timedelta], set[Decimal]] = defaultdict(set)
    covered: set[int] = set()  # the symbol nodes those comparisons account for
    for node in walk(rule.statement.expression):
        if not isinstance(node, COMPARISONS):
            continue
        for side, other in ((node.left, node.right), (node.right, node.left)):
            if not isinstance(other, rule_engine.ast.FloatExpression):
                continue
            if is_time_call(side) and isinstance(arg := side.arguments[0], rule_engine.ast.SymbolExpression):
                elapsed_constants[(arg.name, TIME_FUNCTIONS[side.function.name].unit)].add(other.value)
                covered.update((id(arg), id(side.function)))
            elif isinstance(side, rule_engine.ast.SymbolExpression) and side.name in fields:
                value_constants[side.name].add(other.value)
                covered.add(id(side))
    symbols = [n for n in walk(rule.statement.expression) if isinstance(n, rule_engine.ast.SymbolExpression)]
    if any(n.name in TIME_FUNCTIONS and id(n) not in covered for n in symbols):
        return None
    parts = [
        KeyPart(field, tuple(sorted(elapsed)), unit) for (field, unit), elapsed in sorted(elapsed_constants.items())
    ]
    for field in sorted(fields):
        uses = [n for n in symbols if n.name == field]
        if uses and all(id(n) in covered for n in uses) and field in value_constants:
            parts.append(KeyPart(field, tuple(sorted(value_constants[field]))))
        elif any(id(n) not in covered for n in uses):
            parts.append(KeyPart(field))  # read some other way: its whole value
    return tuple(parts)


def _sides(value: Any, constants: Sequence[Decimal]) -> tuple[int, ...] | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    return tuple((value > c) - (value < c) for c in constants)


def memo_key(spec: KeySpec, view: dict[str, Any], values: dict[str, bytes], now: datetime) -> tuple[Any, ...]:
    """The key of a view at ``now``; ``values``: the view's fields serialised (for whole values)."""
    key: list[Any] = []
    for part in spec:
        value = view[part.field]
        if part.unit is not None:
            elapsed = (now - value) // part.unit if isinstance(value, datetime) else None
            key.append(None if elapsed is None else _sides(elapsed, part.constants))
        elif part.constants:
            sides = _sides(value, part.constants)
            key.append(values[part.field] if sides is None and value is not None else sides)
        else:
            key.append(values[part.field])
    return tuple(key)
