"""The orders facet: web orders and till sales counted once each, cancellations, refunds, store returns
and chargebacks applied once each and exactly, per currency; the customer's spend per category and
product; the loyalty points each order earns (through the loyalty facet).

Orders are counted once per order id, refunds, returns and chargebacks once per their own id, whatever
the delivery count; follow-ups (refunds, cancellations) that overtake their order wait for it in
``recent_orders``. Revenue never goes below zero. The rules of every field are in ``docs/profile.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from schemas.events import (
    Event,
    OrderCancelled,
    OrderCompleted,
    OrderRefunded,
    PaymentChargeback,
    PosReturn,
    PosSale,
    Product,
    minor_units,
)
from schemas.profile import CurrencyTotals, OrderRecord, Profile
from services.profile.facets import Facet, cart, loyalty, payments
from services.profile.facets.order_months import count_month, month_of
from services.profile.policy import FoldRules

MAX_RECENT_ORDERS = 20  # orders (and waiting follow-ups) remembered with their amounts
MAX_AFFINITY = 20  # categories and products with a spend kept; the smallest goes first
TOP_N = 5
REDEMPTION = "loyalty_points"  # the till tender paid with points: a redemption, not a payment method


def fold_order(p: Profile, e: OrderCompleted, rules: FoldRules) -> None:
    """A web order; a new one empties the cart (unless the cart changed after it)."""
    props = e.properties
    method = (props.model_extra or {}).get("payment_method")
    paid = payments.Paid(str(method)[:64] if method else None)
    if _place_order(p, props.order_id, "web", props.order_amount, props.currency, props.products, e, rules, paid):
        cart.clear_for_order(p, e)


def fold_refund(p: Profile, e: OrderRefunded, rules: FoldRules) -> None:
    """Segment's Order Refunded carries no refund id: each event (by event id) is one refund."""
    props = e.properties
    if _refund(p, f"refund:{e.event_id}", props.order_id, props.amount, props.currency, props.products, e, rules):
        p.refund_count += 1


def fold_return(p: Profile, e: PosReturn, rules: FoldRules) -> None:
    props = e.properties
    order = receipt_key(p, props.store_id, props.original_receipt_id) if props.original_receipt_id else None
    key = f"return:{props.store_id}:{props.return_id}"
    if _refund(p, key, order, props.total, props.currency, props.line_items, e, rules):
        p.return_count += 1


def fold_chargeback(p: Profile, e: PaymentChargeback, rules: FoldRules) -> None:
    props = e.properties
    if _refund(p, f"chargeback:{props.payment_id}", props.order_id, props.amount, props.currency, (), e, rules):
        p.chargebacks += 1


def fold_sale(p: Profile, e: PosSale, rules: FoldRules) -> None:
    props = e.properties
    with_points = sum((t.amount for t in props.tenders if t.method == REDEMPTION), Decimal(0))
    key = f"pos:{props.store_id}:{props.receipt_id}"
    paid = payments.Paid(payments.main_tender(props.tenders, REDEMPTION), with_points)
    if _place_order(p, key, "pos", props.total, props.currency, props.line_items, e, rules, paid):
        payments.count_methods(p, [t.method for t in props.tenders if t.method != REDEMPTION])
        if with_points:
            loyalty.redeem(p, rules, rules.points_paid(with_points))


def _place_order(
    p: Profile,
    key: str,
    channel: Literal["web", "pos"],
    amount: Decimal,
    currency: str,
    products: Sequence[Product],
    e: Event,
    rules: FoldRules,
    paid: payments.Paid,
) -> bool:
    """Count an order once per key (False: seen before); follow-ups that arrived first apply now."""
    if key in p.order_ids:
        return False
    p.order_ids.append(key)
    waiting = p.recent_orders.get(key)
    points = rules.points_for(amount - paid.with_points, currency)
    order = OrderRecord(channel=channel, payment_method=paid.method, at=e.occurred_at, currency=currency,
                        amount=amount, paid_with_points=paid.with_points, points=points)  # fmt: skip
    if waiting is not None:  # shipped, delivered or returned before it arrived: it keeps that
        order = order.model_copy(update=fulfilment_of(waiting))
    if waiting is not None and waiting.cancelled:  # cancelled before it arrived: never counts
        put_order(p, key, order.model_copy(update={"cancelled": True}), rules)
        return True
    p.currency = p.currency or currency
    _count_order(p, order, products, +1)
    if channel == "web":
        p.web_orders += 1
    else:
        p.pos_orders += 1
    at = e.occurred_at
    p.first_order_at = at if p.first_order_at is None else min(p.first_order_at, at)
    p.last_order_at = at if p.last_order_at is None else max(p.last_order_at, at)
    put_order(p, key, order, rules)
    if waiting is not None and (waiting.refunded or waiting.whole_refund):
        _apply_refund(p, key, p.recent_orders[key], None if waiting.whole_refund else waiting.refunded, (), rules)
    return True


def _count_order(p: Profile, order: OrderRecord, products: Sequence[Product], sign: int) -> None:
    """Add a counted order to the totals (sign +1), or take it out again with its refunds (-1)."""
    assert order.amount is not None
    p.order_count += sign
    count_month(p.order_months, month_of(order.at), sign)
    _add_totals(p, order.currency, orders=sign, spent=sign * order.amount, refunded=sign * order.refunded)
    _affinity(p, products, order.currency, sign)


def fold_cancel(p: Profile, e: OrderCancelled, rules: FoldRules) -> None:
    """A cancelled order stops counting: out of order_count, the channel count and the money, its points
    taken back. Its id stays in order_ids, and its times stay, so a redelivered Order Completed does not
    count it again. Cancelled before it arrived, it never counts."""
    props = e.properties
    order = p.recent_orders.get(props.order_id)
    if order is None and props.order_id in p.order_ids:  # counted long ago: value it by the cancellation
        amount, earned = props.amount or Decimal(0), p.loyalty.earned
        order = OrderRecord(channel="web", at=e.occurred_at, currency=props.currency, amount=amount,
                            points=min(rules.points_for(amount, props.currency), earned))  # fmt: skip
        p.recent_orders[props.order_id] = order
    if order is not None and order.cancelled:
        return
    p.cancelled_orders += 1
    if order is None or order.amount is None:
        waiting = order or OrderRecord(at=e.occurred_at, currency=props.currency)
        put_order(p, props.order_id, waiting.model_copy(update={"cancelled": True}), rules)
        return
    _count_order(p, order, props.products, -1)
    if order.channel == "web":
        p.web_orders -= 1
    else:
        p.pos_orders -= 1
    put_order(p, props.order_id, order.model_copy(update={"cancelled": True}), rules)


def _refund(
    p: Profile,
    refund_key: str,
    order_key: str | None,
    amount: Decimal | None,
    currency: str,
    products: Sequence[Product],
    e: Event,
    rules: FoldRules,
) -> bool:
    """Apply a refund, store return or chargeback once per ``refund_key`` (False: seen before).

    ``amount`` None refunds what is left of the whole order. Against a known order it is capped at what
    is left of it; one whose order has not arrived waits for it; one against no remembered order is
    capped at the net revenue left in its currency. So revenue never goes below zero."""
    if refund_key in p.refund_ids:
        return False
    p.refund_ids.append(refund_key)
    order = p.recent_orders.get(order_key) if order_key else None
    if order_key is not None and order is None and order_key not in p.order_ids:
        order = OrderRecord(at=e.occurred_at, currency=currency)  # the order has not arrived: wait for it
    if order_key is not None and order is not None and order.amount is None:
        waiting = {"refunded": order.refunded + (amount or 0), "whole_refund": order.whole_refund or amount is None}
        put_order(p, order_key, order.model_copy(update=waiting), rules)
    elif order_key is not None and order is not None:
        _apply_refund(p, order_key, order, amount, products, rules)
    elif amount is not None:
        totals = p.totals_by_currency.get(currency)
        applied = min(amount, max(totals.net, Decimal(0))) if totals else Decimal(0)
        if applied:
            _add_totals(p, currency, refunded=applied)
            _affinity(p, products, currency, -1)
            loyalty.earn(p, rules, -min(rules.points_for(applied, currency), p.loyalty.earned))
    return True


def _apply_refund(
    p: Profile, key: str, order: OrderRecord, amount: Decimal | None, products: Sequence[Product], rules: FoldRules
) -> None:
    if order.cancelled or order.amount is None:
        return
    left = order.amount - order.refunded
    applied = left if amount is None else min(amount, left)
    if applied <= 0:
        return
    _add_totals(p, order.currency, refunded=applied)
    _affinity(p, products, order.currency, -1)
    put_order(p, key, order.model_copy(update={"refunded": order.refunded + applied}), rules)


def fulfilment_of(order: OrderRecord) -> dict[str, Any]:
    """The fulfilment fields of an order record (services.profile.facets.fulfilment sets them)."""
    return {name: getattr(order, name) for name in FULFILMENT_FIELDS}


FULFILMENT_FIELDS = ("status", "status_at", "carrier", "tracking_number", "promised_by", "returned_products")


def receipt_key(p: Profile, store_id: str, receipt_id: str) -> str:
    """The order key of a receipt brought back: of the same store, else of any store that has it."""
    key = f"pos:{store_id}:{receipt_id}"
    if key in p.recent_orders or key in p.order_ids:
        return key
    suffix = f":{receipt_id}"
    return next((k for k in p.recent_orders if k.startswith("pos:") and k.endswith(suffix)), key)


def put_order(p: Profile, key: str, order: OrderRecord, rules: FoldRules) -> None:
    """Remember an order (the oldest beyond MAX_RECENT_ORDERS is forgotten), moving its loyalty points
    to what it earns now: its amount less refunds and what was paid with points, if it counts."""
    points = 0
    if order.amount is not None and not order.cancelled:
        points = rules.points_for(order.amount - order.refunded - order.paid_with_points, order.currency)
    before = p.recent_orders.get(key)
    if points != order.points:
        order = order.model_copy(update={"points": points})
    if delta := points - (before.points if before else 0):
        loyalty.earn(p, rules, delta)
    p.recent_orders[key] = order
    if len(p.recent_orders) > MAX_RECENT_ORDERS:
        del p.recent_orders[min(p.recent_orders, key=lambda k: (p.recent_orders[k].at, k))]


def _add_totals(
    p: Profile, currency: str, orders: int = 0, spent: Decimal = Decimal(0), refunded: Decimal = Decimal(0)
) -> None:
    t = p.totals_by_currency.get(currency) or CurrencyTotals()
    spent, refunded = t.spent + spent, t.refunded + refunded
    t = CurrencyTotals(orders=t.orders + orders, spent=spent, refunded=refunded, net=spent - refunded)
    p.totals_by_currency[currency] = t
    if currency == p.currency:
        p.total_spent, p.refunded_total, p.net_revenue, p.lifetime_value = t.spent, t.refunded, t.net, t.net
        p.average_order_value = _per_order(t.spent, t.orders, currency)


def _per_order(amount: Decimal, orders: int, currency: str) -> Decimal | None:
    if orders <= 0:
        return None
    exponent = minor_units(currency) or 0
    return (amount / orders).quantize(Decimal(1).scaleb(-exponent), ROUND_HALF_EVEN)


def _affinity(p: Profile, products: Sequence[Product], currency: str, sign: int) -> None:
    """Spend per category and per product, in the profile's currency only (never below zero)."""
    if currency != p.currency or not products:
        return
    for item in products:
        amount = sign * item.price * item.quantity
        if item.category:
            _bump(p.category_spend, item.category, amount)
        _bump(p.product_spend, item.product_id, amount)
    p.top_categories = _top(p.category_spend)
    p.top_products = _top(p.product_spend)


def _bump(spend: dict[str, Decimal], key: str, amount: Decimal) -> None:
    value = max(spend.get(key, Decimal(0)) + amount, Decimal(0))
    if not value:
        spend.pop(key, None)
        return
    spend[key] = value
    if len(spend) > MAX_AFFINITY:
        del spend[min(spend, key=lambda k: (spend[k], k))]


def _top(spend: dict[str, Decimal]) -> list[str]:
    return sorted(spend, key=lambda k: (-spend[k], k))[:TOP_N]


def upgrade(p: Profile, rules: FoldRules) -> None:
    """A profile stored before per-currency totals existed (orders, but no ``totals_by_currency``) gets
    them, and the loyalty points its spend earns, from its old sums: all in its first currency."""
    if p.totals_by_currency or not p.currency or not (p.order_count or p.total_spent):
        return
    p.totals_by_currency[p.currency] = CurrencyTotals(orders=p.order_count, spent=p.total_spent, net=p.total_spent)
    p.net_revenue = p.lifetime_value = p.total_spent
    p.average_order_value = _per_order(p.total_spent, p.order_count, p.currency)
    if not p.loyalty.earned:
        loyalty.earn(p, rules, rules.points_for(p.total_spent, p.currency))


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Counts and amounts summed per currency, orders united, spend per category and product summed;
    an order both profiles counted (one order delivered twice under two event ids before the merge) is
    counted once when both still remember it (``recent_orders``); older ones stay in both sums."""
    counted, refunds = set(survivor.order_ids), set(survivor.refund_ids)
    for name in ("order_count", "web_orders", "pos_orders", "cancelled_orders", "refund_count", "return_count"):
        setattr(merged, name, getattr(survivor, name) + getattr(absorbed, name))
    merged.chargebacks = survivor.chargebacks + absorbed.chargebacks
    merged.currency = survivor.currency or absorbed.currency
    merged.totals_by_currency = _sum_totals(survivor.totals_by_currency, absorbed.totals_by_currency)
    merged.order_months = dict(Counter(survivor.order_months) + Counter(absorbed.order_months))
    merged.first_order_at = min(filter(None, (survivor.first_order_at, absorbed.first_order_at)), default=None)
    merged.last_order_at = max(filter(None, (survivor.last_order_at, absorbed.last_order_at)), default=None)
    merged.order_ids = survivor.order_ids + [o for o in absorbed.order_ids if o not in counted]
    merged.recent_orders = {**absorbed.recent_orders, **survivor.recent_orders}
    merged.refund_ids = survivor.refund_ids + [r for r in absorbed.refund_ids if r not in refunds]
    merged.category_spend = _sum_spend(survivor.category_spend, absorbed.category_spend)
    merged.product_spend = _sum_spend(survivor.product_spend, absorbed.product_spend)
    _count_shared_orders_once(merged, survivor.recent_orders, absorbed.recent_orders, rules)
    _derive(merged)


def _derive(p: Profile) -> None:
    """The fields computed from others: money of the profile's currency, average order value, tops."""
    t = p.totals_by_currency.get(p.currency) if p.currency else None
    if p.currency and t is not None:
        p.total_spent, p.refunded_total, p.net_revenue, p.lifetime_value = t.spent, t.refunded, t.net, t.net
        p.average_order_value = _per_order(t.spent, t.orders, p.currency)
    p.top_categories, p.top_products = _top(p.category_spend), _top(p.product_spend)


def _count_shared_orders_once(
    merged: Profile, ours: dict[str, OrderRecord], theirs: dict[str, OrderRecord], rules: FoldRules
) -> None:
    """An order both profiles remember: counted by both, the absorbed profile's copy is taken out; counted
    by one while refunds for it wait in the other, those refunds apply now."""
    for key in ours.keys() & theirs.keys():
        mine, dup = ours[key], theirs[key]
        if mine.amount is None and dup.amount is not None:
            mine, dup = dup, mine  # the one that knows the order stays
        merged.recent_orders[key] = mine
        if mine.amount is None or mine.cancelled or dup.cancelled:
            continue
        if dup.amount is None:
            if dup.refunded or dup.whole_refund:
                _apply_refund(merged, key, mine, None if dup.whole_refund else dup.refunded, (), rules)
            continue
        merged.order_count -= 1
        count_month(merged.order_months, month_of(dup.at), -1)
        if dup.channel == "web":
            merged.web_orders -= 1
        else:
            merged.pos_orders -= 1
        t = merged.totals_by_currency[dup.currency]
        spent, refunded = t.spent - dup.amount, t.refunded - dup.refunded
        merged.totals_by_currency[dup.currency] = CurrencyTotals(
            orders=t.orders - 1, spent=spent, refunded=refunded, net=spent - refunded
        )
        loyalty.earn(merged, rules, -dup.points)
    if len(merged.recent_orders) > MAX_RECENT_ORDERS:
        newest = sorted(merged.recent_orders, key=lambda k: (merged.recent_orders[k].at, k))[-MAX_RECENT_ORDERS:]
        merged.recent_orders = {k: merged.recent_orders[k] for k in newest}


def _sum_totals(first: dict[str, CurrencyTotals], second: dict[str, CurrencyTotals]) -> dict[str, CurrencyTotals]:
    merged = dict(first)
    for currency, t in second.items():
        mine = merged.get(currency)
        if mine is None:
            merged[currency] = t
            continue
        spent, refunded = mine.spent + t.spent, mine.refunded + t.refunded
        merged[currency] = CurrencyTotals(
            orders=mine.orders + t.orders, spent=spent, refunded=refunded, net=spent - refunded
        )
    return merged


def _sum_spend(first: dict[str, Decimal], second: dict[str, Decimal]) -> dict[str, Decimal]:
    merged = dict(first)
    for key, amount in second.items():
        merged[key] = merged.get(key, Decimal(0)) + amount
    if len(merged) > MAX_AFFINITY:
        kept = sorted(merged, key=lambda k: (-merged[k], k))[:MAX_AFFINITY]
        merged = {k: merged[k] for k in kept}
    return merged


FACET = Facet(
    "orders",
    merge,
    folds={
        OrderCompleted: fold_order,
        PosSale: fold_sale,
        OrderCancelled: fold_cancel,
        OrderRefunded: fold_refund,
        PosReturn: fold_return,
        PaymentChargeback: fold_chargeback,
    },
    upgrade=upgrade,
)
