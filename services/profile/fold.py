"""Pure folding of events into a profile: ``fold_events(profile, profile_id, events, rules) -> profile``.

Deterministic (no clock: times come from the events), so a replay of the same events yields the same
profile, version included. Orders are counted once per order id, refunds, returns and chargebacks once per
their own id, whatever the delivery count; follow-ups (refunds, cancellations, replies) that overtake
their cause wait for it. Every list and map is capped except ``order_ids`` and ``refund_ids`` (the dedup
memory). The rules of every field are in ``docs/profile.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from schemas.events import (
    CartProduct,
    CaseClosed,
    ComplaintResponded,
    ConsentGranted,
    ConsentWithdrawn,
    Event,
    Group,
    Identify,
    InvoicePaid,
    OrderCancelled,
    OrderCompleted,
    OrderRefunded,
    PaymentCaptured,
    PaymentChargeback,
    PaymentFailed,
    PosReturn,
    PosSale,
    Product,
    ProductAdded,
    ProductRemoved,
    ProductViewed,
    SocialMessage,
    minor_units,
)
from schemas.profile import (
    Cart,
    CartItem,
    ComplaintAnswer,
    ConsentState,
    CurrencyTotals,
    Loyalty,
    OpenComplaint,
    OrderRecord,
    PaymentFailure,
    Profile,
    Seen,
    ViewedProduct,
)
from services.profile.context import fold_context
from services.profile.groups import fold_group
from services.profile.policy import DEFAULT_RULES, FoldRules
from services.profile.traits import fold_context_traits, fold_identify

MAX_IDS_PER_KIND = 50
MAX_RECENT_ORDERS = 20  # orders (and waiting follow-ups) remembered with their amounts
MAX_RECENT_VIEWS = 5
MAX_PAYMENT_FAILURES = 20  # failed payments remembered with their order, amount and reason (for alerts)
MAX_ANSWERED = 50  # answered complaints remembered, so a redelivered complaint does not reopen
MAX_AFFINITY = 20  # categories and products with a spend kept; the smallest goes first
TOP_N = 5
COMPLAINT_TEXT_CHARS = 500  # kept on the profile for the alert; the full text stays in the event
REDEMPTION = "loyalty_points"  # the till tender paid with points: a redemption, not a payment method


def new_profile(profile_id: str, first: Event) -> Profile:
    return Profile(profile_id=profile_id, created_at=first.occurred_at, updated_at=first.occurred_at)


def fold_events(
    profile: Profile | None, profile_id: str, events: Iterable[Event], rules: FoldRules = DEFAULT_RULES
) -> Profile:
    work = upgraded(_working_copy(profile), rules) if profile is not None else None
    for event in events:
        if work is None:
            work = new_profile(profile_id, event)
        fold_event(work, event, rules)
    if work is None:
        raise ValueError("fold_events needs a profile or at least one event")
    return work


def _working_copy(p: Profile) -> Profile:
    """A copy safe to mutate: fold_event mutates only these containers in place (everything nested in
    them is frozen or replaced, never changed), so copying them is enough and much cheaper than a deep copy."""
    return p.model_copy(
        update={
            "identifiers": {kind: list(values) for kind, values in p.identifiers.items()},
            "identifier_seen": {kind: dict(seen) for kind, seen in p.identifier_seen.items()},
            "traits": dict(p.traits),
            "trait_sources": dict(p.trait_sources),
            "consent": {channel: dict(purposes) for channel, purposes in p.consent.items()},
            "totals_by_currency": dict(p.totals_by_currency),
            "order_ids": list(p.order_ids),
            "recent_orders": dict(p.recent_orders),
            "refund_ids": list(p.refund_ids),
            "category_spend": dict(p.category_spend),
            "product_spend": dict(p.product_spend),
            "open_complaints": list(p.open_complaints),
            "answered_complaints": dict(p.answered_complaints),
            "payment_methods": dict(p.payment_methods),
            "recent_payment_failures": list(p.recent_payment_failures),
        }
    )


def upgraded(p: Profile, rules: FoldRules = DEFAULT_RULES) -> Profile:
    """A profile stored before per-currency totals existed (orders, but no ``totals_by_currency``) gets
    them, and the loyalty points its spend earns, from its old sums: all in its first currency (mutated in
    place; a profile with totals is returned as it is)."""
    if p.totals_by_currency or not p.currency or not (p.order_count or p.total_spent):
        return p
    p.totals_by_currency[p.currency] = CurrencyTotals(orders=p.order_count, spent=p.total_spent, net=p.total_spent)
    p.net_revenue = p.lifetime_value = p.total_spent
    p.average_order_value = _per_order(p.total_spent, p.order_count, p.currency)
    if not p.loyalty.earned:
        _loyalty(p, rules, earned=rules.points_for(p.total_spent, p.currency))
    return p


def fold_event(p: Profile, e: Event, rules: FoldRules = DEFAULT_RULES) -> None:
    """Apply one event to the working copy ``p`` (mutated in place; callers go through fold_events)."""
    p.version += 1
    p.updated_at = max(p.updated_at, e.occurred_at)
    for kind, value in e.identifiers().items():
        _add_identifier(p, kind, value, e.occurred_at)
    if e.context is not None:
        fold_context(p, e.context, e.occurred_at)
        fold_context_traits(p, e, rules)
    match e:
        case Identify():
            fold_identify(p, e, rules)
        case Group():
            fold_group(p, e)
        case ProductViewed():
            _viewed(p, e)
        case ProductAdded() if _after_clearing(p.cart, e):
            _cart_add(p, e.properties, e)
        case ProductRemoved() if _after_clearing(p.cart, e):
            _cart_remove(p, e.properties, e)
        case OrderCompleted():
            _order_completed(p, e, rules)
        case PosSale():
            _pos_sale(p, e, rules)
        case OrderCancelled():
            _cancel(p, e, rules)
        case OrderRefunded():
            _order_refunded(p, e, rules)
        case PosReturn():
            _pos_return(p, e, rules)
        case PaymentChargeback():
            _chargeback(p, e, rules)
        case PaymentFailed():
            _payment_failed(p, e)
        case PaymentCaptured() | InvoicePaid():
            _used_methods(p, [e.properties.method])
        case ConsentGranted() | ConsentWithdrawn():
            _consent(p, e)
        case SocialMessage():
            _complaint(p, e, rules)
        case ComplaintResponded() | CaseClosed():
            if e.properties.message_id:
                _response(p, e.properties.message_id, e.occurred_at)
        case _:
            pass


# ---- identifiers, traits, consent -------------------------------------------------------------------


def _add_identifier(p: Profile, kind: str, value: str, at: datetime) -> None:
    values = p.identifiers.setdefault(kind, [])
    if value not in values:
        if len(values) >= MAX_IDS_PER_KIND:
            return
        values.append(value)
    seen = p.identifier_seen.setdefault(kind, {})
    known = seen.get(value)
    if known is None:
        seen[value] = Seen(at, at)
    elif at > known.last or at < known.first:
        seen[value] = Seen(min(known.first, at), max(known.last, at))


def _consent(p: Profile, e: ConsentGranted | ConsentWithdrawn) -> None:
    """Latest decision by event time wins, per channel and purpose; on a tie a withdrawal wins."""
    props, granted = e.properties, isinstance(e, ConsentGranted)
    purposes = p.consent.setdefault(props.channel, {})
    known = purposes.get(props.purpose)
    if known is None or e.occurred_at > known.at or (e.occurred_at == known.at and not granted):
        purposes[props.purpose] = ConsentState(granted=granted, at=e.occurred_at, source=e.source, method=props.method)


# ---- browsing and cart ------------------------------------------------------------------------------


def _viewed(p: Profile, e: ProductViewed) -> None:
    """The last MAX_RECENT_VIEWS products viewed, newest first by event time, each once."""
    p.product_views += 1
    item = e.properties
    if any(v.product_id == item.product_id and v.at >= e.occurred_at for v in p.recent_views):
        return
    view = ViewedProduct(
        product_id=item.product_id,
        name=item.name,
        category=item.category,
        price=item.price,
        at=e.occurred_at,
    )
    views = [v for v in p.recent_views if v.product_id != item.product_id]
    if not views or e.occurred_at >= views[0].at:
        views.insert(0, view)
    else:
        views.append(view)
        views.sort(key=lambda v: v.at, reverse=True)
    p.recent_views = views[:MAX_RECENT_VIEWS]


def _after_clearing(cart: Cart, e: Event) -> bool:
    """Events arrive roughly, not strictly, in time order: a cart change older than the order that
    emptied the cart belongs to that order and must not refill the cart (an order older than the
    cart's last change leaves the newer cart alone, see OrderCompleted)."""
    return cart.cleared_at is None or e.occurred_at >= cart.cleared_at


def _cart_add(p: Profile, item: CartProduct, e: Event) -> None:
    items = {i.product_id: i for i in p.cart.items}
    current = items.get(item.product_id)
    quantity = item.quantity + (current.quantity if current else 0)
    items[item.product_id] = CartItem(
        product_id=item.product_id,
        sku=item.sku,
        name=item.name,
        category=item.category,
        price=item.price,
        quantity=quantity,
    )
    _set_cart(p, list(items.values()), e)


def _cart_remove(p: Profile, item: CartProduct, e: Event) -> None:
    items = []
    for i in p.cart.items:
        if i.product_id == item.product_id:
            left = i.quantity - item.quantity
            if left > 0:
                items.append(i.model_copy(update={"quantity": left}))
        else:
            items.append(i)
    _set_cart(p, items, e)


def _set_cart(p: Profile, items: list[CartItem], e: Event) -> None:
    value = sum((i.price * i.quantity for i in items), Decimal(0))
    updated = e.occurred_at if p.cart.updated_at is None else max(p.cart.updated_at, e.occurred_at)
    p.cart = Cart(items=items, value=value, updated_at=updated, cleared_at=p.cart.cleared_at)


# ---- orders, cancellations, refunds, returns, chargebacks ------------------------------------------


def _order_completed(p: Profile, e: OrderCompleted, rules: FoldRules) -> None:
    """A web order; a new one empties the cart unless the cart changed after it (see _after_clearing)."""
    props = e.properties
    new = _place_order(p, props.order_id, "web", props.order_amount, props.currency, props.products, e, rules)
    if new and (p.cart.updated_at is None or e.occurred_at >= p.cart.updated_at):
        p.cart = Cart(cleared_at=max(e.occurred_at, p.cart.cleared_at or e.occurred_at))


def _order_refunded(p: Profile, e: OrderRefunded, rules: FoldRules) -> None:
    """Segment's Order Refunded carries no refund id: each event (by event id) is one refund."""
    props = e.properties
    if _refund(p, f"refund:{e.event_id}", props.order_id, props.amount, props.currency, props.products, e, rules):
        p.refund_count += 1


def _pos_return(p: Profile, e: PosReturn, rules: FoldRules) -> None:
    props = e.properties
    order = _receipt_key(p, props.store_id, props.original_receipt_id) if props.original_receipt_id else None
    key = f"return:{props.store_id}:{props.return_id}"
    if _refund(p, key, order, props.total, props.currency, props.line_items, e, rules):
        p.return_count += 1


def _chargeback(p: Profile, e: PaymentChargeback, rules: FoldRules) -> None:
    props = e.properties
    if _refund(p, f"chargeback:{props.payment_id}", props.order_id, props.amount, props.currency, (), e, rules):
        p.chargebacks += 1


def _pos_sale(p: Profile, e: PosSale, rules: FoldRules) -> None:
    props = e.properties
    with_points = sum((t.amount for t in props.tenders if t.method == REDEMPTION), Decimal(0))
    key = f"pos:{props.store_id}:{props.receipt_id}"
    if _place_order(p, key, "pos", props.total, props.currency, props.line_items, e, rules, with_points):
        _used_methods(p, [t.method for t in props.tenders if t.method != REDEMPTION])
        if with_points:
            _loyalty(p, rules, redeemed=rules.points_paid(with_points))


def _place_order(
    p: Profile,
    key: str,
    channel: Literal["web", "pos"],
    amount: Decimal,
    currency: str,
    products: Sequence[Product],
    e: Event,
    rules: FoldRules,
    paid_with_points: Decimal = Decimal(0),
) -> bool:
    """Count an order once per key (False: seen before); follow-ups that arrived first apply now."""
    if key in p.order_ids:
        return False
    p.order_ids.append(key)
    waiting = p.recent_orders.get(key)
    points = rules.points_for(amount - paid_with_points, currency)
    order = OrderRecord(channel=channel, at=e.occurred_at, currency=currency, amount=amount,
                        paid_with_points=paid_with_points, points=points)  # fmt: skip
    if waiting is not None and waiting.cancelled:  # cancelled before it arrived: never counts
        _put_order(p, key, order.model_copy(update={"cancelled": True}), rules)
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
    _put_order(p, key, order, rules)
    if waiting is not None and (waiting.refunded or waiting.whole_refund):
        _apply_refund(p, key, p.recent_orders[key], None if waiting.whole_refund else waiting.refunded, (), rules)
    return True


def _count_order(p: Profile, order: OrderRecord, products: Sequence[Product], sign: int) -> None:
    """Add a counted order to the totals (sign +1), or take it out again with its refunds (-1)."""
    assert order.amount is not None
    p.order_count += sign
    _add_totals(p, order.currency, orders=sign, spent=sign * order.amount, refunded=sign * order.refunded)
    _affinity(p, products, order.currency, sign)


def _cancel(p: Profile, e: OrderCancelled, rules: FoldRules) -> None:
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
        _put_order(p, props.order_id, waiting.model_copy(update={"cancelled": True}), rules)
        return
    _count_order(p, order, props.products, -1)
    if order.channel == "web":
        p.web_orders -= 1
    else:
        p.pos_orders -= 1
    _put_order(p, props.order_id, order.model_copy(update={"cancelled": True}), rules)


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
        _put_order(p, order_key, order.model_copy(update=waiting), rules)
    elif order_key is not None and order is not None:
        _apply_refund(p, order_key, order, amount, products, rules)
    elif amount is not None:
        totals = p.totals_by_currency.get(currency)
        applied = min(amount, max(totals.net, Decimal(0))) if totals else Decimal(0)
        if applied:
            _add_totals(p, currency, refunded=applied)
            _affinity(p, products, currency, -1)
            _loyalty(p, rules, earned=-min(rules.points_for(applied, currency), p.loyalty.earned))
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
    _put_order(p, key, order.model_copy(update={"refunded": order.refunded + applied}), rules)


def _receipt_key(p: Profile, store_id: str, receipt_id: str) -> str:
    """The order key of a receipt brought back: of the same store, else of any store that has it."""
    key = f"pos:{store_id}:{receipt_id}"
    if key in p.recent_orders or key in p.order_ids:
        return key
    suffix = f":{receipt_id}"
    return next((k for k in p.recent_orders if k.startswith("pos:") and k.endswith(suffix)), key)


def _put_order(p: Profile, key: str, order: OrderRecord, rules: FoldRules) -> None:
    """Remember an order (the oldest beyond MAX_RECENT_ORDERS is forgotten), moving its loyalty points
    to what it earns now: its amount less refunds and what was paid with points, if it counts."""
    points = 0
    if order.amount is not None and not order.cancelled:
        points = rules.points_for(order.amount - order.refunded - order.paid_with_points, order.currency)
    before = p.recent_orders.get(key)
    if points != order.points:
        order = order.model_copy(update={"points": points})
    if delta := points - (before.points if before else 0):
        _loyalty(p, rules, earned=delta)
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


def _loyalty(p: Profile, rules: FoldRules, earned: int = 0, redeemed: int = 0) -> None:
    earned, redeemed = p.loyalty.earned + earned, p.loyalty.redeemed + redeemed
    p.loyalty = Loyalty(earned=earned, redeemed=redeemed, balance=earned - redeemed, tier=rules.tier_for(earned))


# ---- payments ---------------------------------------------------------------------------------------


def _payment_failed(p: Profile, e: PaymentFailed) -> None:
    p.payment_failures += 1
    if p.last_payment_failure_at is None or e.occurred_at >= p.last_payment_failure_at:
        p.last_payment_failure_reason = e.properties.reason_code
        p.last_payment_failure_at = e.occurred_at
    props = e.properties
    failure = PaymentFailure(
        payment_id=props.payment_id,
        order_id=props.order_id,
        amount=props.amount,
        currency=props.currency,
        reason=props.reason_code,
        at=e.occurred_at,
    )
    p.recent_payment_failures = remember_failures(p.recent_payment_failures, [failure])


def remember_failures(known: list[PaymentFailure], new: Iterable[PaymentFailure]) -> list[PaymentFailure]:
    """The latest ``MAX_PAYMENT_FAILURES`` failures by event time, oldest first, one per payment id and time."""
    unique = {(f.payment_id, f.at): f for f in [*known, *new]}
    return sorted(unique.values(), key=lambda f: (f.at, f.payment_id))[-MAX_PAYMENT_FAILURES:]


def _used_methods(p: Profile, methods: Iterable[str]) -> None:
    """Count payments by method (a method once per payment); the preferred one is the most used (a tie:
    the first by name, so the order events arrive in does not matter)."""
    for method in set(methods):
        p.payment_methods[method] = p.payment_methods.get(method, 0) + 1
    p.preferred_payment_method = preferred_method(p.payment_methods)


def preferred_method(counts: dict[str, int]) -> str | None:
    return min(counts, key=lambda m: (-counts[m], m)) if counts else None


# ---- complaints -------------------------------------------------------------------------------------


def _complaint(p: Profile, e: SocialMessage, rules: FoldRules) -> None:
    props = e.properties
    if not e.complains(rules.complaint_sentiment) or any(c.message_id == props.message_id for c in p.open_complaints):
        return
    answer = p.answered_complaints.get(props.message_id)
    if answer is not None and answer.complained_at is not None:
        return  # answered already: a redelivery does not reopen it
    p.complaints_total += 1
    if answer is not None:  # its reply overtook it
        _answered(p, props.message_id, answer.answered_at, e.occurred_at)
        return
    p.open_complaints.append(
        OpenComplaint(
            message_id=props.message_id,
            platform=props.platform,
            handle=props.handle,
            text=props.text[:COMPLAINT_TEXT_CHARS],
            sentiment=props.sentiment,
            at=e.occurred_at,
        )
    )


def _response(p: Profile, message_id: str, at: datetime) -> None:
    """A reply or a closed case answers an open complaint; one for a message not seen (yet) is kept, so
    the complaint arriving later is answered at once. Only the first response is timed."""
    for i, c in enumerate(p.open_complaints):
        if c.message_id == message_id:
            del p.open_complaints[i]
            _answered(p, message_id, at, c.at)
            return
    known = p.answered_complaints.get(message_id)
    if known is None or (known.complained_at is None and at < known.answered_at):
        _remember_answer(p, message_id, ComplaintAnswer(answered_at=at))


def _answered(p: Profile, message_id: str, answered_at: datetime, complained_at: datetime) -> None:
    seconds = max((answered_at - complained_at).total_seconds(), 0.0)
    p.complaints_answered += 1
    p.last_first_response_s = seconds
    p.first_response_total_s += seconds
    p.avg_first_response_s = p.first_response_total_s / p.complaints_answered
    _remember_answer(p, message_id, ComplaintAnswer(answered_at=answered_at, complained_at=complained_at))


def _remember_answer(p: Profile, message_id: str, answer: ComplaintAnswer) -> None:
    p.answered_complaints.pop(message_id, None)
    p.answered_complaints[message_id] = answer
    if len(p.answered_complaints) > MAX_ANSWERED:
        del p.answered_complaints[next(iter(p.answered_complaints))]
