"""Time in segment conditions: ``days_since(t)``, ``hours_since(t)`` and ``years_since(t)``, and when a
profile's membership can next change with time alone.

Each function counts whole units elapsed (floor), so ``days_since(t)`` steps up by one at ``t + k`` days
for every whole ``k``, and ``years_since(t)`` on each anniversary of ``t`` (of 29 February: 28 February in
other years), so ``years_since(birthday) >= 67`` becomes true on the 67th birthday. A condition comparing
``days_since(field)`` with constants can only change truth at ``field + c`` and ``field + c + 1`` days for
those constants ``c``: :func:`next_flip` gives the earliest such instant after ``now``, the one time the
profile must be evaluated again without a new event. A use that is not a comparison with a constant makes
every whole unit a candidate. Pure: ``now`` is always given.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

import rule_engine
from rule_engine import DataType


@dataclass(frozen=True, order=True)
class TimeFunction:
    """Whole units elapsed since a time: of a fixed length (``unit``), or calendar years (``unit`` None)."""

    name: str
    unit: timedelta | None = None

    @property
    def data_type(self) -> Any:
        return DataType.FUNCTION("elapsed", return_type=DataType.FLOAT, argument_types=(DataType.DATETIME,))

    def elapsed(self, at: datetime, now: datetime) -> int:
        if self.unit is not None:
            return (now - at) // self.unit
        years = now.year - at.year
        return years if self.reached(at, years) <= now else years - 1

    def reached(self, at: datetime, k: int) -> datetime:
        """The instant the count since ``at`` reaches ``k``."""
        if self.unit is not None:
            return at + k * self.unit
        try:
            return at.replace(year=at.year + k)
        except ValueError:  # 29 February in a year without one
            return at.replace(year=at.year + k, day=28)

    def __str__(self) -> str:
        return str(self.unit) if self.unit is not None else "year"


TIME_FUNCTIONS = {
    "days_since": TimeFunction("days_since", timedelta(days=1)),
    "hours_since": TimeFunction("hours_since", timedelta(hours=1)),
    "years_since": TimeFunction("years_since"),
}


def time_functions(now: datetime) -> dict[str, Callable[[datetime], int]]:
    """The time functions as they read at ``now`` (what a condition's view holds besides the fields)."""

    def since(fn: TimeFunction) -> Callable[[datetime], int]:
        return lambda at: fn.elapsed(at, now)

    return {name: since(fn) for name, fn in TIME_FUNCTIONS.items()}


EVERY_UNIT: frozenset[Decimal] = frozenset()  # thresholds unknown: every whole unit may flip it


@dataclass(frozen=True)
class ClockUse:
    field: str
    unit: TimeFunction
    thresholds: frozenset[Decimal]  # constants it is compared with; EVERY_UNIT when not only compared

    @cached_property
    def steps(self) -> tuple[int, ...]:
        """The whole unit counts at which the comparisons can change truth, in order."""
        return tuple(sorted(_steps(self.thresholds)))


ClockSpec = tuple[ClockUse, ...]
# the attributes of rule-engine's AST nodes that hold sub-expressions (some nodes use __slots__)
_CHILDREN = (
    "left",
    "right",
    "value",
    "container",
    "member",
    "condition",
    "case_true",
    "case_false",
    "object",
    "function",
    "arguments",
    "expression",
    "iterable",
    "result",
    "item",
    "start",
    "stop",
)
COMPARISONS = (rule_engine.ast.ArithmeticComparisonExpression, rule_engine.ast.ComparisonExpression)


def clock_spec(rule: rule_engine.Rule) -> ClockSpec:
    """How the condition of ``rule`` depends on time: per (time function, field) the constants compared."""
    compared: dict[int, Decimal] = {}  # id(call) -> constant, for calls compared with a constant
    calls = []
    for node in walk(rule.statement.expression):
        if isinstance(node, COMPARISONS):
            for call, other in ((node.left, node.right), (node.right, node.left)):
                if is_time_call(call) and isinstance(other, rule_engine.ast.FloatExpression):
                    compared[id(call)] = other.value
        elif is_time_call(node):
            calls.append(node)
    uses: dict[tuple[str, TimeFunction], set[Decimal] | None] = {}
    for call in calls:
        arg = call.arguments[0]
        if not isinstance(arg, rule_engine.ast.SymbolExpression):
            raise ValueError(f"{call.function.name}() takes a field name, like {call.function.name}(last_order_at)")
        key = (arg.name, TIME_FUNCTIONS[call.function.name])
        known = uses.setdefault(key, set())
        if id(call) in compared and known is not None:
            known.add(compared[id(call)])
        else:
            uses[key] = None
    return tuple(
        ClockUse(field, unit, EVERY_UNIT if constants is None else frozenset(constants))
        for (field, unit), constants in sorted(uses.items(), key=lambda item: item[0])
    )


def is_time_call(node: Any) -> bool:
    return (
        isinstance(node, rule_engine.ast.FunctionCallExpression)
        and isinstance(node.function, rule_engine.ast.SymbolExpression)
        and node.function.name in TIME_FUNCTIONS
        and len(node.arguments) == 1
    )


def _steps(thresholds: Iterable[Decimal]) -> set[int]:
    """The whole unit counts at which a comparison with these constants can change truth."""
    steps = set()
    for c in thresholds:
        steps.update({math.floor(c), math.floor(c) + 1, math.ceil(c)})
    return steps


def next_flip(uses: Iterable[ClockUse], view: dict[str, Any], now: datetime) -> datetime | None:
    """The earliest instant after ``now`` at which a condition with these clock uses can change truth for
    the profile ``view`` with no change of the profile; None when it never can."""
    candidates = []
    for use in uses:
        at = view.get(use.field)
        if not isinstance(at, datetime):
            continue
        elapsed = use.unit.elapsed(at, now)
        if use.thresholds == EVERY_UNIT:
            candidates.append(use.unit.reached(at, elapsed + 1))
        elif (i := bisect_right(use.steps, elapsed)) < len(use.steps):  # the next count to come
            candidates.append(use.unit.reached(at, use.steps[i]))
    return min(candidates, default=None)


def merged(uses: Iterable[ClockUse]) -> ClockSpec:
    """The uses of several conditions as one per (field, unit), with the same :func:`next_flip`: each
    field's time computed once however many segments count from it."""
    found: dict[tuple[str, TimeFunction], set[Decimal] | None] = {}
    for use in uses:
        key = (use.field, use.unit)
        if use.thresholds == EVERY_UNIT:
            found[key] = None
        elif key not in found:
            found[key] = set(use.thresholds)
        elif (known := found[key]) is not None:
            known |= use.thresholds
    return tuple(
        ClockUse(field, unit, EVERY_UNIT if constants is None else frozenset(constants))
        for (field, unit), constants in sorted(found.items(), key=lambda item: item[0])
    )


def walk(node: Any) -> Iterator[Any]:
    """Every expression node under ``node`` (itself included)."""
    yield node
    for name in _CHILDREN:
        value = getattr(node, name, None)
        for child in value if isinstance(value, tuple | list) else (value,):
            if isinstance(child, rule_engine.ast.ExpressionBase):
                yield from walk(child)
