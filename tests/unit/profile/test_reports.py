"""Report roll-up deltas derived from the fold: orders under each dimension on their day, refunds and
cancellations back on their order's day, re-sends counted once, merges, currencies kept apart, cohorts and
complaint response times; and the roll-ups always add up to the profiles' own totals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal

from schemas.events import Event
from schemas.profile import Profile
from services.profile.merge import fold_batch
from services.profile.reports import ReportDeltas, report_deltas
from tests.unit import factories as f
from tests.unit.profile import events as ev
from tests.unit.profile.test_merge import merged_event

DAY = date(2025, 3, 14)
APRIL = 60 * 24 * 20  # minutes from 14 March to 3 April


def folded(
    current: Mapping[str, Profile], routed: Sequence[tuple[str, Event]]
) -> tuple[dict[str, Profile], ReportDeltas]:
    changed = fold_batch(current, routed)
    return {**current, **changed}, report_deltas(current, list(changed.values()))


def units(amount: str) -> int:
    return int(Decimal(amount) * 10_000)


def test_new_orders_count_under_their_day_channel_store_and_payment_method() -> None:
    web = f.order("o-1", "10.50", extra={"payment_method": "paypal"})
    till = ev.sale("s-1", "r-1", "20.00", tenders=[("cash", "5.00"), ("card", "15.00")], minutes=60 * 24)
    _, d = folded({}, [("P", web), ("P", till)])
    assert d.sales[(DAY, "channel", "web", "USD")] == (1, units("10.50"), 0)
    assert d.sales[(DAY, "store", "online", "USD")] == (1, units("10.50"), 0)
    assert d.sales[(DAY, "payment_method", "paypal", "USD")] == (1, units("10.50"), 0)
    next_day = date(2025, 3, 15)
    assert d.sales[(next_day, "store", "s-1", "USD")] == (1, units("20.00"), 0)
    assert d.sales[(next_day, "payment_method", "card", "USD")] == (1, units("20.00"), 0)  # the tender paying most
    assert len(d.sales) == 6


def test_a_resent_order_and_a_replayed_batch_add_nothing() -> None:
    profiles, _ = folded({}, [("P", ev.order("o-1", "10.00"))])
    profiles, d = folded(profiles, [("P", ev.order("o-1", "10.00"))])  # the same order under a new event id
    assert d.sales == {} and not d


def test_refunds_and_cancellations_go_back_to_their_orders_day() -> None:
    profiles, _ = folded({}, [("P", ev.order("o-1", "10.00")), ("P", ev.order("o-2", "30.00"))])
    later = [("P", ev.refund("o-1", "4.00", minutes=APRIL)), ("P", ev.cancel("o-2", minutes=APRIL))]
    _, d = folded(profiles, later)
    assert d.sales[(DAY, "channel", "web", "USD")] == (-1, -units("30.00"), units("4.00"))
    assert d.cohorts == {"2025-03": (0, -1)}  # a customer of March still, with one order left: no repeater
    assert d.retention == {}


def test_currencies_are_never_added_together() -> None:
    _, d = folded({}, [("P", ev.order("o-1", "10.00", "EUR")), ("P", ev.order("o-2", "1200", "JPY"))])
    assert d.sales[(DAY, "channel", "web", "EUR")] == (1, units("10.00"), 0)
    assert d.sales[(DAY, "channel", "web", "JPY")] == (1, units("1200"), 0)


def test_a_refund_of_a_forgotten_order_is_booked_unattributed() -> None:
    orders = [("P", ev.order(f"o-{i}", "10.00", minutes=i)) for i in range(25)]  # o-0..o-4 forgotten
    profiles, _ = folded({}, orders)
    _, d = folded(profiles, [("P", ev.refund("o-0", "3.00", minutes=APRIL))])
    april = date(2025, 4, 3)
    assert d.sales == {(april, dim, "unattributed", "USD"): (0, 0, units("3.00"))
                       for dim in ("channel", "store", "payment_method")}  # fmt: skip


def test_a_merge_of_two_profiles_that_both_counted_an_order_counts_it_once() -> None:
    profiles, d1 = folded({}, [("A", ev.order("o-1", "10.00")), ("B", ev.order("o-1", "10.00", customer_id="c-2"))])
    assert d1.sales[(DAY, "channel", "web", "USD")] == (2, units("20.00"), 0)
    assert d1.cohorts == {"2025-03": (2, 0)}
    profiles, d2 = folded(profiles, [("A", merged_event("A", "B", minutes=5))])
    assert d2.sales[(DAY, "channel", "web", "USD")] == (-1, -units("10.00"), 0)
    assert d2.cohorts == {"2025-03": (-1, 0)} and d2.retention == {("2025-03", "2025-03"): -1}


def test_a_merge_moves_a_customer_to_the_earlier_cohort_and_makes_a_repeater() -> None:
    march = ("A", ev.order("o-1", "10.00"))
    april = ("B", ev.order("o-2", "5.00", customer_id="c-2", minutes=APRIL))
    profiles, _ = folded({}, [march, april])
    _, d = folded(profiles, [("A", merged_event("A", "B", minutes=APRIL + 1))])
    assert d.sales == {}  # the orders themselves did not change
    assert d.cohorts == {"2025-03": (0, 1), "2025-04": (-1, 0)}
    assert d.retention == {("2025-03", "2025-04"): 1, ("2025-04", "2025-04"): -1}


def test_cohorts_count_a_customer_once_and_each_month_ordered_in() -> None:
    march = [("P", ev.order("o-1", "10.00")), ("P", ev.order("o-2", "10.00", minutes=5))]
    profiles, d = folded({}, march)
    assert d.cohorts == {"2025-03": (1, 1)} and d.retention == {("2025-03", "2025-03"): 1}
    _, d = folded(profiles, [("P", ev.order("o-3", "10.00", minutes=APRIL))])
    assert d.cohorts == {} and d.retention == {("2025-03", "2025-04"): 1}


def test_a_complaint_answered_counts_its_first_response_once() -> None:
    profiles, d = folded({}, [("P", f.mention("m-1", complaint=True))])
    assert d.responses == {}
    profiles, d = folded(profiles, [("P", f.reply("m-1", minutes=2.5))])
    assert d.responses == {(DAY, 150): 1}
    _, d = folded(profiles, [("P", f.reply("m-1", minutes=9))])  # a second reply is no first response
    assert d.responses == {}


def test_the_roll_ups_add_up_to_the_profiles_totals() -> None:
    batches = [
        [("P", ev.order("o-1", "10.00")), ("Q", ev.sale("s-1", "r-1", "7.25", "EUR", customer_id="c-2"))],
        [("P", ev.refund("o-1", "2.50", minutes=1)), ("P", ev.order("o-2", "5.00", minutes=2))],
        [("Q", ev.store_return("s-1", "x-1", "7.25", "r-1", "EUR", customer_id="c-2", minutes=3))],
        [("P", merged_event("P", "Q", minutes=4)), ("P", ev.cancel("o-2", minutes=5))],
    ]
    profiles: dict[str, Profile] = {}
    sums: dict[str, list[int]] = {}
    for batch in batches:
        profiles, d = folded(profiles, batch)
        for (_, dim, _, currency), delta in d.sales.items():
            if dim == "channel":
                row = sums.setdefault(currency, [0, 0, 0])
                row[:] = [a + b for a, b in zip(row, delta, strict=True)]
    totals = {
        c: [t.orders, units(str(t.spent)), units(str(t.refunded))] for c, t in profiles["P"].totals_by_currency.items()
    }
    assert sums == totals == {"USD": [1, units("10.00"), units("2.50")], "EUR": [1, units("7.25"), units("7.25")]}
