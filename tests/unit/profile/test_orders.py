"""Orders, cancellations, refunds, returns and chargebacks: exact money per currency, each counted once,
follow-ups arriving before their order, caps; category and product spend."""

from __future__ import annotations

from decimal import Decimal

from schemas.profile import CurrencyTotals, Profile
from services.profile.facets.orders import MAX_RECENT_ORDERS
from services.profile.fold import fold_events, upgraded
from tests.unit import factories as f
from tests.unit.factories import at
from tests.unit.profile import events as ev


def money(p: Profile) -> tuple[Decimal, Decimal, Decimal]:
    return p.total_spent, p.refunded_total, p.net_revenue


def test_orders_give_spend_average_and_lifetime_value() -> None:
    p = fold_events(None, "P", [ev.order("o-1", "10.00"), ev.sale("s-1", "r-1", "25.01", minutes=1)])
    assert (p.order_count, p.web_orders, p.pos_orders) == (2, 1, 1)
    assert money(p) == (Decimal("35.01"), Decimal(0), Decimal("35.01"))
    assert p.average_order_value == Decimal("17.50")  # 17.505 rounded half-even to cents
    assert p.lifetime_value == p.net_revenue
    assert p.totals_by_currency == {"USD": CurrencyTotals(orders=2, spent=Decimal("35.01"), net=Decimal("35.01"))}


def test_other_currencies_are_kept_apart_never_summed() -> None:
    events = [ev.order("o-1", "10.00", "EUR"), ev.order("o-2", "1200", "JPY"), ev.order("o-3", "5.00", "EUR")]
    p = fold_events(None, "P", events)
    assert p.currency == "EUR" and p.order_count == 3
    assert (p.total_spent, p.average_order_value) == (Decimal("15.00"), Decimal("7.50"))
    assert p.totals_by_currency["JPY"] == CurrencyTotals(orders=1, spent=Decimal(1200), net=Decimal(1200))
    p = fold_events(p, "P", [ev.refund("o-2", currency="JPY")])
    assert p.totals_by_currency["JPY"].net == 0 and p.net_revenue == Decimal("15.00")


def test_a_partial_refund_lowers_net_revenue_once_per_refund_event() -> None:
    refund = ev.refund("o-1", "4.00", minutes=2)
    p = fold_events(None, "P", [ev.order("o-1", "10.00"), refund, refund])
    assert money(p) == (Decimal("10.00"), Decimal("4.00"), Decimal("6.00"))
    assert p.refund_count == 1 and p.order_count == 1
    p = fold_events(p, "P", [ev.refund("o-1", "4.00", minutes=3)])  # another refund of the same amount
    assert money(p) == (Decimal("10.00"), Decimal("8.00"), Decimal("2.00")) and p.refund_count == 2


def test_refunds_never_exceed_the_order() -> None:
    events = [ev.order("o-1", "10.00"), ev.refund("o-1", "7.00", minutes=1), ev.refund("o-1", "7.00", minutes=2)]
    p = fold_events(None, "P", events)
    assert money(p) == (Decimal("10.00"), Decimal("10.00"), Decimal(0))
    p = fold_events(p, "P", [ev.refund("o-1", minutes=3)])  # the whole order: nothing left to refund
    assert p.net_revenue == 0 and p.refund_count == 3


def test_a_refund_without_amount_refunds_what_is_left_of_the_order() -> None:
    p = fold_events(None, "P", [ev.order("o-1", "10.00"), ev.refund("o-1", "3.00"), ev.refund("o-1", minutes=1)])
    assert money(p) == (Decimal("10.00"), Decimal("10.00"), Decimal(0))


def test_a_refund_arriving_before_its_order_waits_for_it() -> None:
    p = fold_events(None, "P", [ev.refund("o-1", "4.00", minutes=5)])
    assert money(p) == (Decimal(0), Decimal(0), Decimal(0)) and p.refund_count == 1
    assert p.recent_orders["o-1"].amount is None
    p = fold_events(p, "P", [ev.order("o-1", "10.00", minutes=1)])
    assert money(p) == (Decimal("10.00"), Decimal("4.00"), Decimal("6.00"))
    whole = fold_events(None, "P", [ev.refund("o-2"), ev.order("o-2", "9.00")])
    assert money(whole) == (Decimal("9.00"), Decimal("9.00"), Decimal(0))
    too_much = fold_events(None, "P", [ev.refund("o-3", "50.00"), ev.order("o-3", "9.00")])
    assert too_much.net_revenue == 0


def test_a_refund_of_an_order_never_seen_does_not_make_revenue_negative() -> None:
    p = fold_events(None, "P", [ev.refund("o-404", "25.00")])
    assert p.net_revenue == 0 and p.total_spent == 0
    p = fold_events(None, "P", [ev.order("o-1", "10.00"), ev.store_return("s-1", "ret-1", "30.00")])  # no receipt
    assert money(p) == (Decimal("10.00"), Decimal("10.00"), Decimal(0)) and p.return_count == 1


def test_a_store_return_refunds_against_its_receipt_once() -> None:
    ret = ev.store_return("s-1", "ret-1", "5.00", receipt_id="r-1", minutes=2)
    p = fold_events(None, "P", [ev.sale("s-1", "r-1", "20.00"), ret, ret])
    assert money(p) == (Decimal("20.00"), Decimal("5.00"), Decimal("15.00")) and p.return_count == 1
    elsewhere = ev.store_return("s-9", "ret-2", "50.00", receipt_id="r-1", minutes=3)  # at another store
    p = fold_events(p, "P", [elsewhere])
    assert money(p) == (Decimal("20.00"), Decimal("20.00"), Decimal(0)) and p.return_count == 2


def test_a_cancelled_order_stops_counting_and_is_not_counted_again() -> None:
    cancel = ev.cancel("o-1", minutes=2)
    events = [ev.order("o-1", "10.00"), ev.order("o-2", "5.00", minutes=1), ev.refund("o-1", "2.00", minutes=1)]
    p = fold_events(None, "P", [*events, cancel, cancel, ev.order("o-1", "10.00", minutes=3)])
    assert (p.order_count, p.web_orders, p.cancelled_orders) == (1, 1, 1)
    assert money(p) == (Decimal("5.00"), Decimal(0), Decimal("5.00"))  # its refund left with it
    assert p.average_order_value == Decimal("5.00")
    assert p.first_order_at == at(0)  # times of orders placed stay
    assert fold_events(p, "P", [ev.refund("o-1", "1.00", minutes=4)]).net_revenue == Decimal("5.00")


def test_an_order_cancelled_before_it_arrives_never_counts() -> None:
    p = fold_events(None, "P", [ev.cancel("o-1", minutes=2), ev.order("o-1", "10.00", minutes=1)])
    assert (p.order_count, p.web_orders, p.cancelled_orders, p.total_spent) == (0, 0, 1, 0)
    assert p.loyalty.earned == 0


def test_chargebacks_count_once_per_payment_and_lower_net_revenue() -> None:
    cb = ev.payment("payment.chargeback", "pay-1", "10.00", extra={"order_id": "o-1", "reason_code": "fraud"})
    p = fold_events(None, "P", [ev.order("o-1", "10.00"), cb, cb])
    assert (p.chargebacks, p.net_revenue, p.order_count) == (1, Decimal(0), 1)


def test_payment_refunds_do_not_count_twice_with_the_order_refund() -> None:
    paid_back = ev.payment("payment.refunded", "pay-1", "4.00", extra={"order_id": "o-1"})
    p = fold_events(None, "P", [ev.order("o-1", "10.00"), ev.refund("o-1", "4.00"), paid_back])
    assert p.net_revenue == Decimal("6.00")


def test_recent_orders_are_capped_and_older_refunds_still_apply_with_their_amount() -> None:
    orders = [ev.order(f"o-{i}", "10.00", minutes=i) for i in range(MAX_RECENT_ORDERS + 3)]
    p = fold_events(None, "P", orders)
    assert len(p.recent_orders) == MAX_RECENT_ORDERS and "o-0" not in p.recent_orders
    assert len(p.order_ids) == MAX_RECENT_ORDERS + 3
    p = fold_events(p, "P", [ev.refund("o-0", "4.00", minutes=99), ev.refund("o-1", minutes=99)])
    assert p.refunded_total == Decimal("4.00")  # a whole refund of a forgotten order has no known amount
    p = fold_events(p, "P", [orders[0]])  # a replay of a forgotten order still counts nothing
    assert p.order_count == MAX_RECENT_ORDERS + 3


def test_category_and_product_spend_follow_orders_and_refunds_in_the_profile_currency() -> None:
    lines = ev.products(("p-1", "shoes", "30.00", 2), ("p-2", "hats", "10.00", 1), ("p-3", "shoes", "5.00", 1))
    p = fold_events(None, "P", [ev.order("o-1", "75.00", lines=lines)])
    assert p.category_spend == {"shoes": Decimal("65.00"), "hats": Decimal("10.00")}
    assert (p.top_categories, p.top_products) == (["shoes", "hats"], ["p-1", "p-2", "p-3"])
    back = ev.refund("o-1", "60.00", extra={"products": ev.products(("p-1", "shoes", "30.00", 2))})
    p = fold_events(p, "P", [back, ev.order("o-2", "99", "JPY", lines=ev.products(("p-9", "toys", "99", 1)))])
    assert p.category_spend == {"shoes": Decimal("5.00"), "hats": Decimal("10.00")}
    assert (p.top_categories, p.top_products) == (["hats", "shoes"], ["p-2", "p-3"])


def test_store_line_items_count_towards_categories() -> None:
    lines = ev.products(("p-1", "food", "2.50", 4))
    p = fold_events(None, "P", [ev.sale("s-1", "r-1", "10.00", lines=lines)])
    assert p.category_spend == {"food": Decimal("10.00")} and p.top_products == ["p-1"]


def test_replays_in_any_batching_give_the_same_profile() -> None:
    events = [
        ev.refund("o-1", "1.00", minutes=9),
        ev.order("o-1", "10.00", minutes=1),
        ev.sale("s-1", "r-1", "7.00", tenders=[("card", "7.00")], minutes=2),
        ev.store_return("s-1", "x-1", "7.00", receipt_id="r-1", minutes=3),
        ev.cancel("o-2", minutes=4),
        ev.order("o-2", "3.00", minutes=3),
    ]
    once = fold_events(None, "P", events)
    steps = fold_events(fold_events(None, "P", events[:2]), "P", events[2:])
    twice = fold_events(once, "P", events)
    assert once.model_dump_json() == steps.model_dump_json()
    assert twice.model_dump(exclude={"version"}) == once.model_dump(exclude={"version"})
    assert money(once) == (Decimal("17.00"), Decimal("8.00"), Decimal("9.00"))


def test_a_profile_stored_before_per_currency_totals_is_upgraded() -> None:
    old = Profile(profile_id="P", created_at=at(0), updated_at=at(0), order_count=2, total_spent=Decimal("600.00"),
                  currency="EUR", order_ids=["a", "b"])  # fmt: skip
    p = fold_events(old, "P", [ev.order("o-3", "100.00", "EUR", minutes=1)])
    assert (p.order_count, p.total_spent, p.net_revenue) == (3, Decimal("700.00"), Decimal("700.00"))
    assert p.average_order_value == Decimal("233.33") and p.loyalty.earned == 700
    assert upgraded(Profile(profile_id="Q", created_at=at(0), updated_at=at(0))).totals_by_currency == {}


def test_the_order_first_seen_sets_the_currency_even_when_it_is_cancelled_later() -> None:
    p = fold_events(None, "P", [f.order("o-1", "5.00", "EUR"), ev.cancel("o-1", currency="EUR", minutes=1)])
    assert p.currency == "EUR" and p.total_spent == 0 and p.average_order_value is None
