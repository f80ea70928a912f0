"""Hypothesis on the segment language: any text compiles or raises ``SegmentError`` (never anything else),
and a condition that compiles evaluates on any profile to True or False (``SegmentDef.matches``), through
the catalog the segmenter runs, never raising, and to rule-engine's own answer (the conditions are
compiled to Python: :mod:`crmhub.core.conditions.compiler`)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import rule_engine
from hypothesis import given
from hypothesis import strategies as st

from crmhub.core.conditions.clock import time_functions
from crmhub.core.conditions.fields import FIELD_TYPES, SegmentSource, profile_view
from crmhub.core.conditions.language import SegmentDef, SegmentError, compile_segment
from services.segmenter.engine import Catalog, evaluate_change
from tests.fuzzing import cases

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CASES = cases(400)

FIELDS = sorted(FIELD_TYPES)
OPERATORS = ("and", "or", "not", "in", "==", "!=", ">=", "<=", "<", ">", "=~", "+", "-", "*", "/", "%", "**")
LITERALS = ("(", ")", "[", "]", ",", ".", "null", "true", "false", "0", "1", "-1", "2.5", "100", '"web"', '"gold"')
ODDS = ("days_since(", "hours_since(", "$now", "$today", "[0]", "['x']", ".length", "'2026-01-01'", "d'2026-01-01'")
tokens = st.sampled_from([*FIELDS, *OPERATORS, *LITERALS, *ODDS])
constants = st.sampled_from(["null", "true", "0", "-1", "2.5", "500", '"gold"', '"web"', "d'2026-01-01'", "[1, 2]"])
operators = st.sampled_from(["==", "!=", ">=", "<", "=~", "in"])
operands = st.sampled_from(FIELDS) | st.sampled_from(FIELDS).map(lambda f: f"days_since({f})") | constants
comparisons = st.tuples(operands, operators, operands).map(" ".join)
joined = st.lists(comparisons, min_size=1, max_size=3).flatmap(
    lambda parts: st.sampled_from([" and ", " or ", " and not "]).map(lambda glue: glue.join(parts))
)
conditions = joined | st.lists(tokens, min_size=1, max_size=9).map(" ".join) | st.text(max_size=40)


def reference(definition: SegmentDef, view: dict[str, Any]) -> bool:
    try:
        return bool(definition.rule.matches({**view, **time_functions(NOW)}))
    except (rule_engine.EngineError, TypeError):  # a null compared, ``x in null``: false
        return False


def compiled(condition: str) -> SegmentDef | None:
    try:
        return compile_segment("fuzzed", condition)
    except SegmentError:
        return None  # the documented answer to a bad condition


@CASES
@given(conditions)
def test_any_text_compiles_or_is_a_segment_error(condition: str) -> None:
    compiled(condition)


rng = random.Random(5)
profiles: list[dict[str, Any]] = [
    {"profile_id": "empty"},
    {
        "profile_id": "full",
        "version": 3,
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-05-31T00:00:00+00:00",
        "order_count": 0,
        "total_spent": "0",
        "top_categories": ["toys"],
        "traits": {"plan": "gold", "age": 41, "tags": ["a"], "nested": {"x": 1}},
        "loyalty": {"tier": "gold", "balance": 10, "earned": 12},
        "consent": {"email": {"marketing": {"granted": True, "at": "2026-01-01T00:00:00+00:00", "source": "web"}}},
        "cart": {"items": [{"product_id": "p", "quantity": 2, "price": "9.99"}], "value": "19.98"},
    },
]


@CASES
@given(conditions)
def test_a_condition_that_compiles_evaluates_on_any_profile_without_raising(condition: str) -> None:
    definition = compiled(condition)
    if definition is None:
        return
    for doc in profiles:
        view = profile_view(doc)
        assert definition.matches(view, NOW) is reference(definition, view)
        out = evaluate_change(Catalog([definition]), SegmentSource.model_validate(doc), None, set(), NOW)
        assert out is not None and out.after <= {"fuzzed"}
