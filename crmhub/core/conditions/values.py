"""Values as rule-engine evaluates them: the canonical form it reads, how it orders values, which
operands its arithmetic takes. The compiled conditions (:mod:`.compiler`) use these to give its answers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from rule_engine import errors
from rule_engine.types import coerce_value, is_numeric

Undefined = errors.EvaluationError  # raised where rule-engine raises: the condition is false
FALSE_WHEN = (errors.EngineError, TypeError)  # what makes a condition false instead of an error


def canonical(value: Any, tz: Any) -> Any:
    """A value as rule-engine reads it (``ExpressionBase._new_value``): numbers as Decimal, arrays as
    tuples, mappings as OrderedDicts, naive times in the context's zone."""
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is Decimal:
        return value
    if kind is int:
        return Decimal(value)
    value = coerce_value(value, verify_type=False)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value


ORDERS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}
FLIPPED = {operator.ge: operator.le, operator.gt: operator.lt, operator.le: operator.ge, operator.lt: operator.gt}
INCLUSIVE = (operator.ge, operator.le)


def ordered(op: Callable[[Any, Any], bool], left: Any, right: Any) -> bool:
    """``<``, ``<=``, ``>``, ``>=`` as rule-engine orders values: null only with null, arrays item by item."""
    if left is None and right is None:
        return op in INCLUSIVE
    if isinstance(left, tuple) and isinstance(right, tuple):
        for a, b in zip(left, right, strict=False):
            if ordered(operator.ne, a, b):
                return ordered(op, a, b)
        return ordered(op, len(left), len(right)) if len(left) != len(right) else op in INCLUSIVE
    if type(left) is not type(right):
        raise Undefined("data type mismatch")
    return op(left, right)


ARITHMETIC_OPS = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "tdiv": operator.truediv,
    "fdiv": operator.floordiv,
    "mod": operator.mod,
    "pow": operator.pow,
}


def operands_fit(kind: str, left: Any, right: Any) -> bool:
    """Whether rule-engine's ``+`` (``add``), ``-`` (``sub``) or other arithmetic takes these operands."""
    if kind in ("add", "sub"):
        if isinstance(left, datetime):
            return isinstance(right, timedelta) or (kind == "sub" and isinstance(right, datetime))
        if isinstance(left, timedelta):
            return isinstance(right, timedelta) or (kind == "add" and isinstance(right, datetime))
    if kind == "add" and (isinstance(left, bytes) or isinstance(right, bytes)):
        return isinstance(left, bytes) and isinstance(right, bytes)
    if kind == "add" and (isinstance(left, str) or isinstance(right, str)):
        return isinstance(left, str) and isinstance(right, str)
    return bool(is_numeric(left) and is_numeric(right))
