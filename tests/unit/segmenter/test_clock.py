"""Time functions and the next instant time alone can change a condition's truth (an injected clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmhub.core.conditions.clock import next_flip, time_functions
from crmhub.core.conditions.fields import profile_view
from crmhub.core.conditions.language import compile_segment, evaluate

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def view(**times: datetime) -> dict[str, object]:
    return profile_view({"profile_id": "P", "order_count": 1, **{k: v.isoformat() for k, v in times.items()}})


def test_time_functions_count_whole_units_elapsed() -> None:
    fns = time_functions(NOW)
    assert fns["days_since"](NOW - 90 * DAY + timedelta(seconds=1)) == 89
    assert fns["days_since"](NOW - 90 * DAY) == 90
    assert fns["hours_since"](NOW - 90 * timedelta(minutes=1)) == 1
    assert fns["days_since"](NOW + HOUR) == -1  # a time in the future


def test_years_since_counts_anniversaries_so_an_age_advances_on_the_birthday() -> None:
    retirement = compile_segment("retirement", "years_since(birthday) >= 67")
    born = profile_view({"profile_id": "P", "traits": {"birthday": "1959-06-02"}})
    assert born["birthday"] == datetime(1959, 6, 2, tzinfo=UTC)
    assert time_functions(NOW)["years_since"](born["birthday"]) == 66  # the birthday is tomorrow
    assert evaluate([retirement], born, NOW) == set()
    birthday = datetime(2026, 6, 2, tzinfo=UTC)
    assert next_flip(retirement.clock, born, NOW) == birthday  # the segmenter wakes then, with no event
    assert evaluate([retirement], born, birthday) == {"retirement"}
    leap = profile_view({"profile_id": "P", "traits": {"birthday": "1960-02-29T00:00:00.000Z"}})
    assert next_flip(retirement.clock, leap, NOW) == datetime(2027, 2, 28, tzinfo=UTC)  # no 29 Feb in 2027
    assert profile_view({"profile_id": "P", "traits": {"birthday": "soon"}})["birthday"] is None


def test_lapsed_90_days_flips_on_day_91_with_no_new_event() -> None:
    lapsed = compile_segment("lapsed", "order_count > 0 and days_since(last_order_at) >= 90")
    last = NOW - 90 * DAY + timedelta(seconds=5)
    v = view(last_order_at=last)
    assert evaluate([lapsed], v, NOW) == set()
    flip = next_flip(lapsed.clock, v, NOW)
    assert flip == last + 90 * DAY == NOW + timedelta(seconds=5)
    assert evaluate([lapsed], v, flip - timedelta(microseconds=1)) == set()
    assert evaluate([lapsed], v, flip) == {"lapsed"}
    # after the flip, nothing the comparison can see changes any more: no further wake-up after day 91
    assert next_flip(lapsed.clock, v, flip) == last + 91 * DAY
    assert next_flip(lapsed.clock, v, last + 91 * DAY) is None


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_every_truth_change_is_at_a_flip_time(op: str) -> None:
    """Walk an hour at a time over 100 days: the condition only changes truth at instants next_flip gave."""
    d = compile_segment("s", f"days_since(last_order_at) {op} 30")
    last = NOW - timedelta(hours=7)
    v = view(last_order_at=last)
    flips, at = set(), NOW
    while (flip := next_flip(d.clock, v, at)) is not None and flip < NOW + 100 * DAY:
        flips.add(flip)
        at = flip
    t, before = NOW, evaluate([d], v, NOW)
    while t < NOW + 100 * DAY:
        t += HOUR
        now_in = evaluate([d], v, t)
        if now_in != before:
            assert any(t - HOUR < f <= t for f in flips), f"{op}: truth changed at {t} with no flip time"
        before = now_in


def test_a_use_other_than_a_comparison_wakes_every_unit() -> None:
    d = compile_segment("s", "days_since(last_order_at) % 7 == 0")
    last = NOW - 3 * DAY - HOUR
    assert next_flip(d.clock, view(last_order_at=last), NOW) == last + 4 * DAY


def test_the_earliest_flip_over_several_fields_and_units() -> None:
    d = compile_segment(
        "s", "days_since(first_order_at) < 30 or (cart_items > 0 and hours_since(cart_updated_at) >= 1)"
    )
    cart = {
        "items": [{"product_id": "p1", "price": "5", "quantity": 1}],
        "updated_at": (NOW - timedelta(minutes=10)).isoformat(),
    }
    v = profile_view({"profile_id": "P", "first_order_at": (NOW - 2 * DAY).isoformat(), "cart": cart})
    assert next_flip(d.clock, v, NOW) == NOW + timedelta(minutes=50)


def test_no_flip_without_a_time_or_without_a_clock() -> None:
    assert next_flip(compile_segment("s", "days_since(last_order_at) > 3").clock, view(), NOW) is None
    assert next_flip(compile_segment("s", "order_count > 3").clock, view(last_order_at=NOW), NOW) is None
