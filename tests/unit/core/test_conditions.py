"""The shared segment language: bare conditions (journeys) besides named segments (the segmenter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmhub.core.conditions.fields import profile_view
from crmhub.core.conditions.language import ConditionError, SegmentError, compile_condition, compile_segment

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_bare_condition_reads_the_profile_at_a_given_time() -> None:
    lapsed = compile_condition("order_count > 0 and days_since(last_order_at) >= 90")
    view = {**profile_view({"profile_id": "P1"}), "order_count": 1, "last_order_at": NOW - timedelta(days=90)}
    assert lapsed.fields == frozenset({"order_count", "last_order_at"})
    assert lapsed.holds(view, NOW) and not lapsed.holds(view, NOW - timedelta(days=1))


def test_its_errors_say_what_is_wrong_and_a_segment_adds_whose_it_is() -> None:
    with pytest.raises(ConditionError, match=r"^unknown field 'totl' in 'totl > 1' \(did you mean 'total_spent'\?\)$"):
        compile_condition("totl > 1")
    with pytest.raises(SegmentError, match=r"^segment 's': unknown field 'totl' in 'totl > 1'"):
        compile_segment("s", "totl > 1")


def test_untyped_conditions_read_any_name_and_are_still_checked_for_syntax() -> None:
    big = compile_condition("total >= 100 and currency == 'EUR'", None)
    assert big.holds({"total": 150, "currency": "EUR"}, NOW) and not big.holds({"total": 150}, NOW)
    with pytest.raises(ConditionError, match="bad condition 'total >='"):
        compile_condition("total >=", None)
