"""Report roll-ups from a folded batch: what the batch changed in the figures of ``/v1/reports``, as deltas
the profile store adds to the roll-up tables in the transaction that saves the profiles and the consumer
offsets (so each batch counts exactly once: a replay after a crash is fenced by the stored offsets).

The deltas are the difference between the profiles before and after the batch, not a second reading of
the events: whatever the fold decided (an order re-sent under another event id counted once, a refund
capped at what is left of its order, a cancellation, two profiles merged that both counted an order)
the figures follow, and they always add up to the profiles' own totals. Figures and their rules:
``docs/reports.md``.

- **Sales**: per order key the profiles remember (``recent_orders``), its value after the batch less its
  value before (1 order, its amount and its refunds while it counts; nothing once cancelled), booked on the
  order's day under its channel, store and payment method. What the totals per currency changed beyond
  that (a refund of an order the profile no longer remembers) is booked as ``unattributed`` on the day of
  the batch's latest change.
- **Cohorts**: each customer counts in the month of their first order (``first_order_at``), as a repeat
  customer from their second order, and as active in each month they ordered in (``order_months``).
- **Complaints**: each complaint answered in the batch (first response), by the day it was made and
  whole seconds to the answer.

Money is kept in ten-thousandths (:data:`UNITS`, the finest an amount can be given in): integers, exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TypeVar

from schemas.profile import OrderRecord, Profile
from services.profile.facets.order_months import month_of

UNITS = Decimal(10_000)  # money in ten-thousandths: amounts have at most 4 decimal places
DIMENSIONS = ("channel", "store", "payment_method")
UNATTRIBUTED = "unattributed"
ONLINE = "online"  # the store of web orders
UNKNOWN = "unknown"

Money3 = tuple[int, int, int]  # orders, gross, refunded (ten-thousandths)
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class ReportDeltas:
    """What one batch adds to each roll-up (zero entries left out)."""

    sales: dict[tuple[date, str, str, str], Money3] = field(default_factory=dict)  # (day, dimension, key, currency)
    cohorts: dict[str, tuple[int, int]] = field(default_factory=dict)  # first-order month: customers, repeaters
    retention: dict[tuple[str, str], int] = field(default_factory=dict)  # (cohort, month ordered in): customers
    responses: dict[tuple[date, int], int] = field(default_factory=dict)  # (day complained, seconds): answered

    def __bool__(self) -> bool:
        return bool(self.sales or self.cohorts or self.retention or self.responses)


def report_deltas(current: Mapping[str, Profile], changed: Sequence[Profile]) -> ReportDeltas:
    """The roll-up deltas of a batch: ``current`` holds the profiles as they were before it (those it
    names), ``changed`` the ones it changed (stubs of merged profiles included)."""
    before = [current[p.profile_id] for p in changed if p.profile_id in current]
    return ReportDeltas(
        sales=_nonzero(sales_deltas(before, changed)),
        cohorts=_nonzero(_by_cohort(_diff(_cohort_sizes(changed), _cohort_sizes(before)))),
        retention=_nonzero(_diff(_retention(changed), _retention(before))),
        responses=_nonzero(_responses(changed, before)),
    )


def day_of(at: datetime) -> date:
    return at.astimezone(UTC).date()


def units(amount: Decimal) -> int:
    return int(amount * UNITS)


def _value(order: OrderRecord | None) -> Money3:
    """What an order adds to the figures: one order, its amount and refunds while it counts."""
    if order is None or order.amount is None or order.cancelled:
        return (0, 0, 0)
    return (1, units(order.amount), units(order.refunded))


def _remembered(profiles: Iterable[Profile]) -> dict[str, list[OrderRecord]]:
    found: dict[str, list[OrderRecord]] = {}
    for p in profiles:
        for key, order in p.recent_orders.items():
            found.setdefault(key, []).append(order)
    return found


def sales_deltas(before: Sequence[Profile], after: Sequence[Profile]) -> dict[tuple[date, str, str, str], Money3]:
    """Per order remembered after the batch, its value less its value(s) before, under each dimension;
    then what the per-currency totals changed beyond that, unattributed. An order forgotten in the batch
    (beyond the ``recent_orders`` cap) changes nothing: its value stays in the figures as it was."""
    was, now = _remembered(before), _remembered(after)
    counted_before = {key for p in before for key in p.order_ids}
    sales: dict[tuple[date, str, str, str], Money3] = {}
    attributed: dict[str, Money3] = {}
    for key, orders in now.items():
        order = orders[0]
        if key in was:
            old = _sum(_value(o) for o in was[key])
        elif key in counted_before and order.amount is not None:  # counted long ago, forgotten: at its amount
            old = (1, units(order.amount), 0)
        else:
            old = (0, 0, 0)
        delta = _minus(_sum(_value(o) for o in orders), old)
        if delta != (0, 0, 0):
            for dimension, value in _dimensions(key, order).items():
                _add(sales, (day_of(order.at), dimension, value, order.currency), delta)
            _add(attributed, order.currency, delta)
    _unattributed(sales, before, after, attributed)
    return sales


def _unattributed(
    sales: dict[tuple[date, str, str, str], Money3],
    before: Sequence[Profile],
    after: Sequence[Profile],
    attributed: Mapping[str, Money3],
) -> None:
    """Book what the totals per currency changed beyond the orders' own deltas (a refund, store return or
    chargeback of an order no longer remembered) on the day of the batch's latest change."""
    totals = _minus_totals(_totals(after), _totals(before))
    if not after:
        return
    day = day_of(max(p.updated_at for p in after))
    for currency in sorted(totals.keys() | attributed.keys()):
        rest = _minus(totals.get(currency, (0, 0, 0)), attributed.get(currency, (0, 0, 0)))
        if rest != (0, 0, 0):
            for dimension in DIMENSIONS:
                _add(sales, (day, dimension, UNATTRIBUTED, currency), rest)


def _totals(profiles: Iterable[Profile]) -> dict[str, Money3]:
    found: dict[str, Money3] = {}
    for p in profiles:
        for currency, t in p.totals_by_currency.items():
            _add(found, currency, (t.orders, units(t.spent), units(t.refunded)))
    return found


def _minus_totals(a: Mapping[str, Money3], b: Mapping[str, Money3]) -> dict[str, Money3]:
    return {c: _minus(a.get(c, (0, 0, 0)), b.get(c, (0, 0, 0))) for c in a.keys() | b.keys()}


def _dimensions(key: str, order: OrderRecord) -> dict[str, str]:
    """The order's channel, store (``pos:<store>:<receipt>`` keys name it; web orders are ``online``) and
    payment method."""
    store = key.split(":")[1] if key.startswith("pos:") and key.count(":") >= 2 else ONLINE
    return {"channel": order.channel or UNKNOWN, "store": store, "payment_method": order.payment_method or UNKNOWN}


def _cohort_sizes(profiles: Iterable[Profile]) -> Counter[tuple[str, str]]:
    sizes: Counter[tuple[str, str]] = Counter()
    for p in profiles:
        if p.order_count > 0 and p.first_order_at is not None:
            cohort = month_of(p.first_order_at)
            sizes[(cohort, "customers")] += 1
            sizes[(cohort, "repeaters")] += int(p.order_count >= 2)
    return sizes


def _retention(profiles: Iterable[Profile]) -> Counter[tuple[str, str]]:
    active: Counter[tuple[str, str]] = Counter()
    for p in profiles:
        if p.order_count > 0 and p.first_order_at is not None:
            active.update((month_of(p.first_order_at), month) for month in p.order_months)
    return active


def _responses(after: Iterable[Profile], before: Iterable[Profile]) -> Counter[tuple[date, int]]:
    """The complaints answered in the batch: answered after it, not before (in any profile it names)."""
    answered_before = {m for p in before for m, a in p.answered_complaints.items() if a.complained_at is not None}
    found: Counter[tuple[date, int]] = Counter()
    seen: set[str] = set()
    for p in after:
        for message_id, a in p.answered_complaints.items():
            if a.complained_at is None or message_id in answered_before or message_id in seen:
                continue
            seen.add(message_id)
            seconds = max(int((a.answered_at - a.complained_at).total_seconds()), 0)
            found[(day_of(a.complained_at), seconds)] += 1
    return found


def _diff(after: Counter[K], before: Counter[K]) -> Counter[K]:
    """``after - before``, negative counts kept (``Counter.__sub__`` drops them)."""
    diff = Counter(after)
    diff.subtract(before)
    return diff


def _by_cohort(sizes: Mapping[tuple[str, str], int]) -> dict[str, tuple[int, int]]:
    cohorts = {cohort for cohort, _ in sizes}
    return {c: (sizes.get((c, "customers"), 0), sizes.get((c, "repeaters"), 0)) for c in cohorts}


def _sum(values: Iterable[Money3]) -> Money3:
    total = (0, 0, 0)
    for v in values:
        total = (total[0] + v[0], total[1] + v[1], total[2] + v[2])
    return total


def _minus(a: Money3, b: Money3) -> Money3:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _add(into: dict[K, Money3], key: K, value: Money3) -> None:
    into[key] = _sum([into.get(key, (0, 0, 0)), value])


def _nonzero(counts: Mapping[K, V]) -> dict[K, V]:
    return {k: v for k, v in counts.items() if (any(v) if isinstance(v, tuple) else v)}
