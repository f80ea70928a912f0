"""Loyalty points: earned per currency unit (configurable), taken back by refunds, returns and
cancellations, redeemed at the till; tiers by thresholds, also going down."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

import pytest

from crmhub.core.settings import Settings
from schemas.profile import Loyalty
from services.profile.fold import fold_events
from services.profile.policy import DEFAULT_RULES, FoldRules
from tests.unit.profile import events as ev

RULES = FoldRules(tiers=(("member", 0), ("silver", 100), ("gold", 500)))


def test_points_are_earned_per_whole_unit_spent_web_and_store() -> None:
    p = fold_events(None, "P", [ev.order("o-1", "99.99"), ev.sale("s-1", "r-1", "0.99", minutes=1)], RULES)
    assert p.loyalty == Loyalty(earned=99, redeemed=0, balance=99, tier="member")  # rounded down per order


def test_the_rate_is_configurable_per_currency() -> None:
    rules = FoldRules(points_per_unit=Decimal(2), rates=MappingProxyType({"JPY": Decimal("0.01")}))
    p = fold_events(None, "P", [ev.order("o-1", "10.50"), ev.order("o-2", "1250", "JPY")], rules)
    assert p.loyalty.earned == 21 + 12


def test_a_refund_takes_points_back_and_can_lower_the_tier() -> None:
    p = fold_events(None, "P", [ev.order("o-1", "120.00")], RULES)
    assert (p.loyalty.earned, p.loyalty.tier) == (120, "silver")
    p = fold_events(p, "P", [ev.refund("o-1", "30.00", minutes=1)], RULES)
    assert (p.loyalty.earned, p.loyalty.tier) == (90, "member")
    p = fold_events(p, "P", [ev.order("o-2", "600.00", minutes=2)], RULES)
    assert p.loyalty.tier == "gold"
    p = fold_events(p, "P", [ev.cancel("o-2", minutes=3)], RULES)
    assert (p.loyalty.earned, p.loyalty.tier) == (90, "member")


def test_a_store_return_takes_points_back() -> None:
    events = [ev.sale("s-1", "r-1", "150.00"), ev.store_return("s-1", "x", "100.00", receipt_id="r-1", minutes=1)]
    assert fold_events(None, "P", events, RULES).loyalty.earned == 50


def test_paying_with_points_redeems_them_and_earns_none_on_that_part() -> None:
    sale = ev.sale("s-1", "r-1", "30.00", tenders=[("loyalty_points", "5.00"), ("card", "25.00")])
    p = fold_events(None, "P", [ev.order("o-1", "1000.00"), sale], RULES)
    assert p.loyalty == Loyalty(earned=1025, redeemed=500, balance=525, tier="gold")
    assert p.payment_methods == {"card": 1}  # points are a redemption, not a payment method


def test_a_tier_needs_its_threshold_and_none_below_the_lowest() -> None:
    rules = FoldRules(tiers=(("silver", 100),))
    assert fold_events(None, "P", [ev.order("o-1", "99.00")], rules).loyalty.tier is None
    assert fold_events(None, "P", [ev.order("o-1", "100.00")], rules).loyalty.tier == "silver"


def test_default_rules_are_the_default_settings() -> None:
    assert FoldRules.from_settings(Settings()) == DEFAULT_RULES
    configured = Settings(loyalty_rates="jpy:0.01", loyalty_tiers="gold:10,base:0", trait_survivorship="*:first")
    rules = FoldRules.from_settings(configured)
    assert rules.rates == {"JPY": Decimal("0.01")}
    assert rules.tiers == (("base", 0), ("gold", 10))
    assert rules.survivorship == {"*": ("first",)}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("loyalty_rates", "EURO:1"),
        ("loyalty_rates", "EUR:-1"),
        ("loyalty_rates", "EUR:x"),
        ("loyalty_tiers", "gold"),
        ("loyalty_tiers", "gold:1,silver:1"),
        ("trait_survivorship", "name:web>nowhere"),
        ("trait_survivorship", "name:sometimes"),
    ],
)
def test_bad_loyalty_and_survivorship_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name.split("_")[0]):
        Settings(**{name: value})
