"""RFM: quintile cut points of the base, scores per profile, monetary per currency, refresh of changes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from schemas.profile import Profile
from services.profile.fold import fold_events
from services.profile.rfm import (
    base_thresholds,
    days_since_last_order,
    quintile_thresholds,
    refresh_rfm,
    rfm_scores,
    with_rfm,
)
from tests.unit.factories import at
from tests.unit.profile import events as ev

NOW = at(0) + timedelta(days=100)


def customer(pid: str, orders: int, each: str, days_ago: int, currency: str = "USD") -> Profile:
    placed = [ev.order(f"{pid}-{i}", each, currency, minutes=i) for i in range(orders)]
    p = fold_events(None, pid, placed)
    return p.model_copy(update={"last_order_at": NOW - timedelta(days=days_ago)})


def test_quintile_thresholds_are_nearest_rank() -> None:
    assert quintile_thresholds(range(1, 11)) == (2, 4, 6, 8)
    assert quintile_thresholds([5]) == (5, 5, 5, 5)
    assert quintile_thresholds([]) == ()
    assert quintile_thresholds([Decimal("2.5"), Decimal("1.5")]) == (Decimal("1.5"),) * 2 + (Decimal("2.5"),) * 2


def test_scores_against_the_base() -> None:
    base = [customer(f"c{i}", orders=i, each=f"{10 * i}.00", days_ago=100 - 10 * i) for i in range(1, 11)]
    thresholds = base_thresholds(base, NOW)
    best, worst = rfm_scores(base[-1], thresholds, NOW), rfm_scores(base[0], thresholds, NOW)
    assert best is not None and worst is not None
    assert (best.recency, best.frequency, best.monetary, best.score) == (5, 5, 5, "555")
    assert (worst.score, worst.computed_at) == ("111", NOW)
    middle = rfm_scores(base[4], thresholds, NOW)
    assert middle is not None and middle.score == "333"


def test_equal_values_score_alike_and_a_uniform_base_scores_one() -> None:
    base = [customer(f"c{i}", orders=1, each="10.00", days_ago=3) for i in range(7)]
    scores = {s.score for p in base if (s := rfm_scores(p, base_thresholds(base, NOW), NOW))}
    assert scores == {"511"}


def test_monetary_compares_customers_of_the_same_currency_only() -> None:
    base = [customer("u1", 1, "10.00", 1), customer("u2", 1, "20.00", 1), customer("j1", 1, "100000", 1, "JPY")]
    thresholds = base_thresholds(base, NOW)
    assert set(thresholds.monetary) == {"USD", "JPY"}
    # two USD customers: cut points (10, 10, 20, 20); the yen customer is alone in its currency
    assert [s.monetary for p in base if (s := rfm_scores(p, thresholds, NOW))] == [1, 3, 1]


def test_profiles_without_orders_or_merged_away_are_outside_the_base() -> None:
    nobody = Profile(profile_id="n", created_at=at(0), updated_at=at(0))
    merged = customer("m", 5, "99.00", 1).model_copy(update={"merged_into": "x"})
    thresholds = base_thresholds([nobody, merged, customer("c", 1, "1.00", 1)], NOW)
    assert thresholds.frequency == (1, 1, 1, 1)
    assert rfm_scores(nobody, thresholds, NOW) is None and rfm_scores(merged, thresholds, NOW) is None
    assert days_since_last_order(nobody, NOW) is None
    assert days_since_last_order(customer("c", 1, "1.00", 12), NOW) == 12


def test_refresh_returns_only_the_profiles_whose_scores_changed() -> None:
    base = [customer(f"c{i}", orders=i, each="10.00", days_ago=i) for i in range(1, 6)]
    first = refresh_rfm(base, NOW)
    assert len(first) == 5 and all(p.rfm is not None for p in first)
    assert refresh_rfm(first, NOW + timedelta(hours=1)) == []
    assert first[0].version == base[0].version  # the version counts events only
    thresholds = base_thresholds(first, NOW)
    assert with_rfm(first[0], thresholds, NOW) is None


def test_folding_keeps_the_scores_until_the_next_refresh() -> None:
    scored = refresh_rfm([customer("c", 1, "1.00", 1)], NOW)[0]
    assert fold_events(scored, "c", [ev.order("o-new", "5.00", minutes=9)]).rfm == scored.rfm
