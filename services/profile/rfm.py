"""RFM scores: recency, frequency and monetary quintiles of a customer against the whole customer base.

Pure: the periodic refresh (wiring) reads the base, calls ``base_thresholds`` once, then ``with_rfm`` for
every profile, and saves and publishes the profiles whose scores changed. ``now`` is the refresh's clock.

- The base: profiles that are not merged away and have a counted order (``order_count >= 1`` and a
  ``last_order_at``). Others get ``rfm = None``.
- Recency: whole days since ``last_order_at``; fewer days score higher (5 = the most recent fifth).
- Frequency: ``order_count``; more scores higher.
- Monetary: ``net_revenue`` in the profile's currency, against the customers of the same currency only
  (amounts of different currencies are never compared).
- Cut points are nearest-rank quintiles (20th, 40th, 60th, 80th percentile); a value scores 1 plus the
  number of cut points it exceeds (recency: 5 minus the number of cut points it exceeds), so equal
  values always score alike, and a base where everyone is alike scores everyone 1 (recency 5).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from schemas.profile import RFM, Profile

V = TypeVar("V", int, Decimal)
QUINTILES = (1, 2, 3, 4)  # the cut points: the 20th, 40th, 60th and 80th percentile


def quintile_thresholds(values: Iterable[V]) -> tuple[V, ...]:
    """The four nearest-rank quintile cut points of ``values`` (empty for no values)."""
    ordered = sorted(values)
    if not ordered:
        return ()
    return tuple(ordered[max(math.ceil(q * len(ordered) / 5) - 1, 0)] for q in QUINTILES)


def score_higher_better(value: V, thresholds: Sequence[V]) -> int:
    return 1 + sum(1 for t in thresholds if value > t)


def score_lower_better(value: V, thresholds: Sequence[V]) -> int:
    return 5 - sum(1 for t in thresholds if value > t)


@dataclass(frozen=True)
class RfmThresholds:
    recency_days: tuple[int, ...] = ()
    frequency: tuple[int, ...] = ()
    monetary: dict[str, tuple[Decimal, ...]] = field(default_factory=dict)  # by currency


def in_base(p: Profile) -> bool:
    return p.merged_into is None and p.order_count >= 1 and p.last_order_at is not None


def days_since(at: datetime, now: datetime) -> int:
    """Whole days from ``at`` to ``now`` (0 for a time in the future of ``now``)."""
    return max((now - at).days, 0)


def days_since_last_order(p: Profile, now: datetime) -> int | None:
    return days_since(p.last_order_at, now) if p.last_order_at else None


def base_thresholds(profiles: Iterable[Profile], now: datetime) -> RfmThresholds:
    """Quintile cut points of the customer base (one pass; profiles outside the base are skipped)."""
    recency: list[int] = []
    frequency: list[int] = []
    monetary: dict[str, list[Decimal]] = defaultdict(list)
    for p in profiles:
        if not in_base(p):
            continue
        assert p.last_order_at is not None
        recency.append(days_since(p.last_order_at, now))
        frequency.append(p.order_count)
        if p.currency:
            monetary[p.currency].append(p.net_revenue)
    return RfmThresholds(
        recency_days=quintile_thresholds(recency),
        frequency=quintile_thresholds(frequency),
        monetary={currency: quintile_thresholds(values) for currency, values in monetary.items()},
    )


def rfm_scores(p: Profile, thresholds: RfmThresholds, now: datetime) -> RFM | None:
    """The profile's scores against the base, or None when it is not in the base."""
    if not in_base(p) or p.last_order_at is None:
        return None
    recency = score_lower_better(days_since(p.last_order_at, now), thresholds.recency_days)
    frequency = score_higher_better(p.order_count, thresholds.frequency)
    monetary = score_higher_better(p.net_revenue, thresholds.monetary.get(p.currency or "", ()))
    return RFM(
        recency=recency,
        frequency=frequency,
        monetary=monetary,
        score=f"{recency}{frequency}{monetary}",
        computed_at=now,
    )


def with_rfm(p: Profile, thresholds: RfmThresholds, now: datetime) -> Profile | None:
    """The profile with fresh scores, or None when its scores (not their time) are unchanged, so the
    refresh writes and publishes only the profiles that changed. The version is not changed: it counts
    events."""
    scores = rfm_scores(p, thresholds, now)
    old = p.rfm
    if (scores and scores.score) == (old and old.score):
        return None
    return p.model_copy(update={"rfm": scores})


def refresh_rfm(profiles: Sequence[Profile], now: datetime) -> list[Profile]:
    """Both steps over a base held in memory (tests, small bases): the profiles whose scores changed."""
    thresholds = base_thresholds(profiles, now)
    return [changed for p in profiles if (changed := with_rfm(p, thresholds, now)) is not None]
