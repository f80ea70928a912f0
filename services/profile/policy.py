"""The configurable rules of the fold: loyalty earning, redemption and tiers, and trait survivorship; and
the catalogue entries the batch being folded needs.

Pure values: ``FoldRules()`` holds the defaults (equal to ``Settings()``'s), ``FoldRules.from_settings``
the configured ones. A change of rules applies to the events folded from then on; what earlier events
earned stays as it was folded (the tier is re-read from the thresholds on every fold of the profile).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from types import MappingProxyType

from crmhub.core.setting_values import parse_loyalty_rates, parse_loyalty_tiers, parse_trait_survivorship
from crmhub.core.settings import Settings
from schemas.events import CatalogProductProperties

_DEFAULTS = Settings.model_fields
LATEST, FIRST = ("latest",), ("first",)


@dataclass(frozen=True)
class FoldRules:
    points_per_unit: Decimal = _DEFAULTS["loyalty_points_per_unit"].default
    rates: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType(parse_loyalty_rates("")))
    point_value: Decimal = _DEFAULTS["loyalty_point_value"].default
    tiers: tuple[tuple[str, int], ...] = parse_loyalty_tiers(_DEFAULTS["loyalty_tiers"].default)
    survivorship: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType(parse_trait_survivorship(""))
    )
    complaint_sentiment: float = _DEFAULTS["complaint_sentiment"].default
    catalog: Mapping[str, CatalogProductProperties] = field(default_factory=lambda: MappingProxyType({}))
    """Not a setting: the catalogue's entries of the products a batch folds, looked up by the service
    before the fold (``with_catalog``), so the fold itself never reads anything."""

    @classmethod
    def from_settings(cls, settings: Settings) -> FoldRules:
        return cls(
            points_per_unit=settings.loyalty_points_per_unit,
            rates=MappingProxyType(parse_loyalty_rates(settings.loyalty_rates)),
            point_value=settings.loyalty_point_value,
            tiers=parse_loyalty_tiers(settings.loyalty_tiers),
            survivorship=MappingProxyType(parse_trait_survivorship(settings.trait_survivorship)),
            complaint_sentiment=settings.complaint_sentiment,
        )

    def with_catalog(self, products: Mapping[str, CatalogProductProperties]) -> FoldRules:
        return replace(self, catalog=MappingProxyType(dict(products)))

    def points_for(self, amount: Decimal, currency: str) -> int:
        """Whole points an amount earns (rounded down; never negative)."""
        if amount <= 0:
            return 0
        return int((amount * self.rates.get(currency, self.points_per_unit)).to_integral_value(ROUND_FLOOR))

    def points_paid(self, amount: Decimal) -> int:
        """Points a till tender of ``amount`` paid with loyalty points used up (rounded half-even)."""
        return int((amount / self.point_value).to_integral_value(ROUND_HALF_EVEN))

    def tier_for(self, earned: int) -> str | None:
        tier = None
        for name, threshold in self.tiers:
            if earned >= threshold:
                tier = name
        return tier

    def trait_wins(self, trait: str, new: tuple[str, datetime], known: tuple[str, datetime] | None) -> bool:
        """Whether a value from (source, time) ``new`` replaces the one from ``known``."""
        if known is None:
            return True
        rule = self.survivorship.get(trait) or self.survivorship.get("*") or LATEST
        (new_source, new_at), (old_source, old_at) = new, known
        if rule == FIRST:
            return new_at <= old_at
        if rule != LATEST:
            rank_new, rank_old = _rank(rule, new_source), _rank(rule, old_source)
            if rank_new != rank_old:
                return rank_new < rank_old
        return new_at >= old_at


def _rank(ranked: tuple[str, ...], source: str) -> int:
    return ranked.index(source) if source in ranked else len(ranked)


DEFAULT_RULES = FoldRules()
