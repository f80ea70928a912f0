"""Conditions compiled to Python closures with rule-engine's answers, at a fraction of its cost.

rule-engine interprets its tree for every profile (each node re-checks types, coerces what it reads: an
int to a Decimal, a dict to an OrderedDict); with 50 segments that was most of the segmenter's time.
:func:`compile_test` turns the tree, once, into closures over ``(view, now)`` doing what each node's
``evaluate`` does, in its order, raising where it raises: a raise anywhere makes the condition false
(a null compared, ``x in null``), never an error. Values are read in rule-engine's form (numbers as
Decimal, arrays as tuples); shortcuts only where the view holds that form already, or where the result
is provably the same (an int compares with a Decimal constant exactly as its Decimal does).

A node without a translation (comprehensions, slices, bitwise operators, ``$`` built-ins, attributes of
strings, arrays and mappings, a pattern that is not a constant, other functions) makes the condition
fall back to ``Rule.matches``: whatever rule-engine accepts stays valid (a stored API segment keeps
working) and the fallback cannot disagree with it. ``native`` tells them apart; the shipped conditions
are all native, and a test compares both on random profiles.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import rule_engine
from rule_engine import DataType, errors
from rule_engine import ast as nodes
from rule_engine.types import is_integer_number, is_numeric

from crmhub.core.conditions.clock import TIME_FUNCTIONS, time_functions
from crmhub.core.conditions.values import (
    ARITHMETIC_OPS,
    FALSE_WHEN,
    FLIPPED,
    ORDERS,
    Undefined,
    canonical,
    operands_fit,
    ordered,
)

View = Mapping[str, Any]
Value = Callable[[View, datetime], Any]  # a compiled expression: its value for (view, now)
Test = Callable[[View, datetime], bool]


_ONLY_STR = frozenset({str}).issuperset


class Unsupported(Exception):
    """A node the compiler has no translation for (the condition is interpreted)."""


@dataclass
class _Build:
    typed: bool  # over the profile view (time functions in scope), not an event's properties
    arithmetic: bool = False  # computes numbers: evaluated in rule-engine's decimal context


def compile_test(rule: rule_engine.Rule, typed: bool) -> tuple[Test, bool]:
    """(the test of ``rule``, whether it is compiled natively); ``typed``: a condition over the profile
    view, which rule-engine evaluates with the time functions in scope."""
    build = _Build(typed)
    try:
        value = compile_node(rule.statement.expression, build)
    except Unsupported:
        return _interpreted(rule, typed), False
    if not build.arithmetic:

        def test(view: View, now: datetime) -> bool:
            try:
                return bool(value(view, now))
            except FALSE_WHEN:
                return False

        return test, True
    context = rule.context.decimal_context

    def computing(view: View, now: datetime) -> bool:
        try:
            with decimal.localcontext(context):
                return bool(value(view, now))
        except FALSE_WHEN:
            return False

    return computing, True


def _interpreted(rule: rule_engine.Rule, typed: bool) -> Test:
    def test(view: View, now: datetime) -> bool:
        try:
            return bool(rule.matches({**view, **time_functions(now)} if typed else view))
        except FALSE_WHEN:  # rule-engine raises TypeError for ``x in null``
            return False

    return test


def compile_node(node: Any, build: _Build) -> Value:
    compiler = _COMPILERS.get(type(node))
    if compiler is None:
        raise Unsupported(type(node).__name__)
    return compiler(node, build)


# ---- leaves: constants, fields, time functions -------------------------------------------------------


def _literal(node: Any, build: _Build) -> Value:
    if not node.is_reduced:  # an array or mapping literal holding fields
        raise Unsupported("a literal holding fields")
    value = node.evaluate(None)
    return lambda view, now: value


def _symbol(node: Any, build: _Build) -> Value:
    """A field of the view, checked against its declared type as rule-engine does (the symbol's own
    ``evaluate`` for any value not already in canonical form)."""
    if node.scope is not None or (build.typed and node.name in TIME_FUNCTIONS):
        raise Unsupported(f"symbol {node.name!r}")
    name, exact, kind = node.name, node.evaluate, node.result_type

    def number(view: View, now: datetime) -> Any:
        value = view.get(name)
        if value is None or type(value) is Decimal:
            return value
        return Decimal(value) if type(value) is int else exact(view)

    def loader(ready: Callable[[Any], bool]) -> Value:
        def load(view: View, now: datetime) -> Any:
            value = view.get(name)
            return value if value is None or ready(value) else exact(view)

        return load

    if kind == DataType.FLOAT or kind == DataType.UNDEFINED:
        return number if kind == DataType.FLOAT else loader(lambda v: type(v) in (str, bool, Decimal))
    if kind == DataType.STRING or kind == DataType.BOOLEAN:
        python_type = kind.python_type
        return loader(lambda v: type(v) is python_type)
    if kind == DataType.DATETIME:
        return loader(lambda v: type(v) is datetime and v.tzinfo is not None)
    if DataType.is_type(kind, DataType.ARRAY) and kind.value_type == DataType.STRING:
        return loader(lambda v: type(v) is tuple and _ONLY_STR(map(type, v)))
    return lambda view, now: exact(view)


def _call(node: Any, build: _Build) -> Value:
    """``days_since(field)``, ``hours_since(field)``, ``years_since(field)``: whole units as a Decimal."""
    elapsed = _elapsed(node, build)
    return lambda view, now: Decimal(elapsed(view, now))


def _elapsed(node: Any, build: _Build) -> Value:
    function, args = node.function, node.arguments
    if not (build.typed and isinstance(function, nodes.SymbolExpression) and function.scope is None):
        raise Unsupported("a function call")
    if function.name not in TIME_FUNCTIONS or len(args) != 1:
        raise Unsupported(f"function {function.name!r}")
    unit, at = TIME_FUNCTIONS[function.name], compile_node(args[0], build)

    def elapsed(view: View, now: datetime) -> int:
        since = at(view, now)
        if not isinstance(since, datetime):
            raise errors.FunctionCallError("data type mismatch (argument #1)", function_name=function.name)
        try:
            return unit.elapsed(since, now)
        except Exception as exc:  # a year out of range: rule-engine wraps whatever the function raises
            raise errors.FunctionCallError("function call failed", error=exc, function_name=function.name) from None

    return elapsed


# ---- access: attributes of typed objects, items, membership -----------------------------------------


def _attribute(node: Any, build: _Build) -> Value:
    """``rfm.recency``: an attribute of a typed object (a TypedDict of the profile), read with its
    accessor. A field holding a plain dict is read as it is: coercing the dict first gives the same."""
    kind = node.object.result_type
    if not DataType.is_type(kind, DataType.OBJECT):
        raise Unsupported("an attribute of a string, array or mapping")
    accessor, name, safe, tz = kind.accessor, node.name, node.safe, node.context.default_timezone
    obj = compile_node(node.object, build)
    field = node.object.name if isinstance(node.object, nodes.SymbolExpression) else None

    def attribute(view: View, now: datetime) -> Any:
        held = view.get(field) if field is not None else None
        resolved = held if type(held) is dict else obj(view, now)
        if resolved is None and safe:
            return None
        try:
            value = accessor(resolved, name)
        except (AttributeError, KeyError):
            value = None  # the context's default value
        return canonical(value, tz)

    return attribute


def _item(node: Any, build: _Build) -> Value:
    container, item = compile_node(node.container, build), compile_node(node.item, build)
    safe, tz = node.safe, node.context.default_timezone

    def get(view: View, now: datetime) -> Any:
        resolved = container(view, now)
        if resolved is None:
            if safe:
                return None
            raise Undefined("data type mismatch (container is null)")
        key = item(view, now)
        if isinstance(resolved, bytes | str | tuple):
            if not is_integer_number(key):
                raise Undefined("data type mismatch (not an integer number)")
            key = int(key)
        try:
            value = resolved[key]
        except (IndexError, KeyError):
            if safe:
                return None
            raise errors.LookupError(resolved, key) from None
        return canonical(value, tz)

    return get


def _contains(node: Any, build: _Build) -> Value:
    container, member = compile_node(node.container, build), compile_node(node.member, build)

    def contains(view: View, now: datetime) -> bool:
        found = container(view, now)
        if type(found) is not tuple:
            kind = DataType.from_value(found)
            value = member(view, now)
            if (kind == DataType.STRING or kind == DataType.BYTES) and DataType.from_value(value) != kind:
                raise Undefined("data type mismatch")
            return bool(value in found)
        return bool(member(view, now) in found)

    return contains


# ---- comparisons ------------------------------------------------------------------------------------


def _order(node: Any, build: _Build) -> Value:
    op = ORDERS[node.type]
    fast = _with_constant(node.left, node.right, op, build) or _with_constant(node.right, node.left, FLIPPED[op], build)
    if fast is not None:
        return fast
    left, right = compile_node(node.left, build), compile_node(node.right, build)
    return lambda view, now: ordered(op, left(view, now), right(view, now))


def _with_constant(side: Any, other: Any, op: Callable[[Any, Any], bool], build: _Build) -> Value | None:
    """``side op number`` for a number field or a time function, the shape of most conditions: an int or a
    Decimal as the view holds it (it compares with the constant exactly as its Decimal would)."""
    if not isinstance(other, nodes.FloatExpression):
        return None
    constant = other.value
    if isinstance(side, nodes.FunctionCallExpression):
        elapsed = _elapsed(side, build)  # an int, or it raises
        return lambda view, now: op(elapsed(view, now), constant)
    if not (isinstance(side, nodes.SymbolExpression) and side.scope is None and side.result_type == DataType.FLOAT):
        return None
    name, exact = side.name, compile_node(side, build)

    def compare(view: View, now: datetime) -> bool:
        value = view.get(name)
        if type(value) is int or type(value) is Decimal:
            return op(value, constant)
        return ordered(op, exact(view, now), constant)

    return compare


def _equality(node: Any, build: _Build) -> Value:
    """``==``, ``!=``: values of different types are never equal (a number is not a string, null only null)."""
    left, right = compile_node(node.left, build), compile_node(node.right, build)
    if node.type == "eq":

        def equal(view: View, now: datetime) -> bool:
            a, b = left(view, now), right(view, now)
            return type(a) is type(b) and a == b

        return equal

    def unequal(view: View, now: datetime) -> bool:
        a, b = left(view, now), right(view, now)
        return type(a) is not type(b) or a != b

    return unequal


def _regex(node: Any, build: _Build) -> Value:
    """``=~`` (match), ``=~~`` (search), ``!~``, ``!~~`` against a constant pattern (or null)."""
    if not isinstance(node.right, nodes.StringExpression | nodes.NullExpression):
        raise Unsupported("a regular expression that is not a constant")
    pattern = None if node.right.value is None else re.compile(node.right.value, flags=node.context.regex_flags)
    left, positive = compile_node(node.left, build), node.type in ("eq_fzm", "eq_fzs")
    find = re.Pattern.match if node.type.endswith("fzm") else re.Pattern.search

    def regex(view: View, now: datetime) -> bool:
        text = left(view, now)
        if text is not None and not isinstance(text, str):
            raise Undefined("data type mismatch")
        if text is None or pattern is None:
            return (text is None and pattern is None) == positive
        return (find(pattern, text) is not None) == positive

    return regex


# ---- logic and control --------------------------------------------------------------------------------


def _logic(node: Any, build: _Build) -> Value:
    left, right = compile_node(node.left, build), compile_node(node.right, build)
    if node.type == "and":
        return lambda view, now: bool(left(view, now) and right(view, now))
    return lambda view, now: bool(left(view, now) or right(view, now))


def _unary(node: Any, build: _Build) -> Value:
    right = compile_node(node.right, build)
    if node.type == "not":
        return lambda view, now: not right(view, now)
    build.arithmetic = True

    def minus(view: View, now: datetime) -> Any:
        value = right(view, now)
        if not is_numeric(value) and not isinstance(value, timedelta):
            raise Undefined("data type mismatch (not a numeric or timedelta value)")
        return -value

    return minus


def _ternary(node: Any, build: _Build) -> Value:
    condition = compile_node(node.condition, build)
    yes, no = compile_node(node.case_true, build), compile_node(node.case_false, build)
    return lambda view, now: yes(view, now) if condition(view, now) else no(view, now)


def _coalesce(node: Any, build: _Build) -> Value:
    left, right = compile_node(node.left, build), compile_node(node.right, build)
    return lambda view, now: right(view, now) if (value := left(view, now)) is None else value


# ---- arithmetic (in rule-engine's decimal context: see compile_test) --------------------------------


def _arithmetic(node: Any, build: _Build) -> Value:
    left, right = compile_node(node.left, build), compile_node(node.right, build)
    kind, op = node.type, ARITHMETIC_OPS[node.type]
    build.arithmetic = True

    def compute(view: View, now: datetime) -> Any:
        a, b = left(view, now), right(view, now)
        if not operands_fit(kind, a, b):
            raise Undefined("data type mismatch")
        if kind in ("add", "sub"):
            return op(a, b)
        try:
            return op(a, b)
        except ArithmeticError:  # division by zero, overflow (rule-engine's errors.ArithmeticError)
            raise Undefined("arithmetic error") from None

    return compute


_COMPILERS: dict[type, Callable[[Any, _Build], Value]] = {
    **{kind: _literal for kind in nodes.LiteralExpressionBase.__subclasses__()},
    nodes.SymbolExpression: _symbol,
    nodes.FunctionCallExpression: _call,
    nodes.GetAttributeExpression: _attribute,
    nodes.GetItemExpression: _item,
    nodes.ContainsExpression: _contains,
    nodes.ArithmeticComparisonExpression: _order,
    nodes.ComparisonExpression: _equality,
    nodes.FuzzyComparisonExpression: _regex,
    nodes.LogicExpression: _logic,
    nodes.UnaryExpression: _unary,
    nodes.TernaryExpression: _ternary,
    nodes.CoalesceExpression: _coalesce,
    nodes.AddExpression: _arithmetic,
    nodes.SubtractExpression: _arithmetic,
    nodes.ArithmeticExpression: _arithmetic,
}
