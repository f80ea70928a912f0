"""Realistic synthetic retail traffic: Segment web messages plus native store/payment/social/support events.

Pure and deterministic for a seed (no I/O, no clock reads). Each customer walks a journey: anonymous
browsing, identify (the first one is the sign-up, with marketing consent for email and sometimes sms), cart,
checkout, payment info, payment authorisation, then an order or an abandoned cart. An order is captured, or
cancelled before that; a captured order may be refunded in part or whole (Order Refunded, later
payment.refunded) and, rarely, charged back. Customers also shop in stores and bring some of it back, buy
on invoice as businesses, have payments fail, complain (or rave) on social media in mentions, comments and
direct messages, support replies to some complaints and later closes a case for some of those; now and then
someone changes their consent in the preference centre or unsubscribes. The catalogue's products are
upserted first (source ``catalog``: warranty and expected life by category, some successors); captured web
orders are shipped (a promise of delivery, now and then one already broken), delivered or, one attempt in
ten, not (tried again later), and some are sent back (``order.*``, native events on the web source).
A few customers are members of the shop's association: they join (a ``group`` call names their chapter),
renew, lapse or cancel (``membership.*``), register for its events, check in and cancel
(``association_event.*``), native events of the membership system on the web source.
Customers open service cases about delivered orders by phone, e-mail, chat or in a store; an agent replies
to the oldest, a case is closed, and the survey after it (or after a delivery) comes back with NPS and
CSAT; some review a product they received (``Product Reviewed``).

Web outputs are Segment tracking API messages (consent changes too: track calls named ``consent.granted`` /
``consent.withdrawn``, as the sign-up form and preference centre would send them); every other source
emits dicts matching ``schemas.events``. What happens later (a capture, a payment refund, an invoice
payment, a reply, a closed case) waits in a queue until its step takes the oldest one stamped strictly
before the current output, so it always comes after its cause.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from itertools import accumulate
from typing import Any, Generic, TypeVar

from crmhub.demo import catalogue as cat
from crmhub.demo.catalogue import Customer

CENT = Decimal("0.01")
LIBRARY = {"name": "crmhub-demo", "version": "0.1.0"}
BAD_KINDS = ("invalid_json", "wrong_type", "missing_field")
PENDING = 1000  # most follow-ups (captures, refunds, replies …) waiting at once; the oldest are dropped
RECENT = 5000  # how many recent receipts and captured orders returns, refunds and chargebacks pick from
T = TypeVar("T")
Pending = TypeVar("Pending", bound=tuple[Any, ...])  # a follow-up: (time of its cause, …)


@dataclass(frozen=True)
class TrafficMix:
    """Relative weights of journey steps; each step emits at most one output (``abandon`` emits none, nor
    does a step with nothing to do, like a capture with no order waiting: another step is drawn). A sign-up's
    marketing opt-ins (``consent.granted``) are the only outputs no step draws: they follow the sign-up.

    With the defaults (2,000 customers) browsing and cart activity are ~50-60% of outputs (Product Viewed
    ~40%, pos.sale ~9%, Order Completed ~4%, each order also bringing Payment Info Entered, an authorisation
    and a capture); ~1.6% of outputs are complaints, ~60% of which support answers, ~1.3% payment failures;
    ~4% of orders are cancelled, ~8% refunded and under 1% charged back; ~5% of receipts come back in part.
    """

    browse: float = 60.0  # Product Viewed, anonymous or identified
    new_device: float = 1.0  # an identified customer shows up with a fresh anonymousId (then browses)
    add_to_cart: float = 22.0  # Product Added (an anonymous visitor identifies first)
    view_cart: float = 4.0  # Cart Viewed
    remove_from_cart: float = 4.0  # Product Removed
    checkout: float = 7.0  # Checkout Started
    payment_info: float = 6.5  # Payment Info Entered during a checkout
    payment_authorisation: float = 6.2  # payment.authorised for a checkout whose payment info is in
    web_order: float = 6.0  # Order Completed (of an authorised checkout)
    abandon: float = 0.9  # a cart silently dies: no output
    payment_capture: float = 6.0  # payment.captured for the oldest uncaptured order (on shipping)
    order_cancellation: float = 0.25  # Order Cancelled: the newest order, before its capture
    order_refund: float = 0.5  # Order Refunded: some or all of a captured order
    payment_refund: float = 0.6  # payment.refunded for the oldest Order Refunded not yet paid back
    chargeback: float = 0.05  # payment.chargeback of a captured, unrefunded order
    pos_sale: float = 14.0  # pos.sale
    pos_return: float = 0.8  # pos.return of some or all of an earlier receipt, at its store
    payment_failure: float = 2.0  # payment.failed, mostly during a web checkout
    invoice: float = 0.15  # payment.invoice_issued to a business customer
    invoice_payment: float = 0.2  # payment.invoice_paid for the oldest open invoice (a few are never paid)
    complaint: float = 2.6  # a social mention, comment or direct message that complains
    praise: float = 1.3  # a positive social mention, comment or direct message
    support_reply: float = 1.6  # support.complaint_responded to the oldest open complaint
    case_closure: float = 0.8  # support.case_closed for the oldest answered complaint that became a case
    consent_opt_in: float = 0.2  # consent.granted in the preference centre (sign-ups grant theirs anyway)
    consent_withdrawal: float = 0.5  # consent.withdrawn: an unsubscribe link or the preference centre
    # order fulfilment (native events of the shop's back office, on the web source)
    shipment: float = 5.5  # order.shipped for the oldest captured order not shipped yet
    delivery: float = 5.5  # order.delivered (or, one in ten, order.delivery_failed) of the oldest shipment
    order_return: float = 0.3  # order.returned: some or all of a delivered order sent back
    email_campaign: float = 4.0  # a marketing e-mail's lifecycle: Email Delivered, Opened, Link Clicked …
    push_campaign: float = 1.0  # Push Notification Received, sometimes Tapped
    membership: float = 0.8  # membership.started (then a group call) / renewed / lapsed / cancelled
    association_event: float = 0.8  # association_event.registered / attended / cancelled, members only
    # service cases and feedback (the helpdesk's and the survey tool's native events, on the support source)
    service_case: float = 1.0  # support.case_opened by phone, e-mail, chat or in a store, about a delivered order
    case_reply: float = 0.9  # support.note_added: an agent's reply to the oldest unanswered case
    survey: float = 0.8  # survey.answered (NPS, CSAT) after a closed case, else after a delivery
    review: float = 0.6  # Product Reviewed: a product of a delivered order


@dataclass(frozen=True)
class Generated:
    source: str  # "web" | "pos" | "payment" | "social" | "support" | "catalog"
    key: str  # partition key: anonymousId for web, a customer identifier otherwise
    payload: dict[str, Any] | bytes  # bytes only for deliberately invalid JSON


_BY_ID = {p.product_id: p for p in cat.PRODUCTS}


@dataclass
class _Order:
    """A completed web order and what happened to its payment since."""

    order_id: str
    customer: Customer
    lines: dict[str, int]  # product_id -> quantity
    payment_id: str
    method: str
    placed_at: datetime
    captured_at: datetime | None = None
    refunded: dict[str, int] = field(default_factory=dict)  # product_id -> quantity refunded so far
    charged_back: bool = False

    @property
    def total(self) -> Decimal:
        return _total(self.lines)


@dataclass
class _Receipt:
    """A till receipt, kept so that its goods can be brought back."""

    receipt_id: str
    store: cat.Store
    ids: dict[str, str]  # the customer identifiers of the sale
    lines: dict[str, int]
    tender: str  # the first tender: a return is refunded the same way
    sold_at: datetime
    returned: dict[str, int] = field(default_factory=dict)


class _Recent(Generic[T]):
    """The last ``size`` items added, for uniform random picks in O(1)."""

    def __init__(self, size: int) -> None:
        self._items: list[T] = []
        self._size = size
        self._next = 0

    def add(self, item: T) -> None:
        if len(self._items) < self._size:
            self._items.append(item)
        else:
            self._items[self._next] = item
            self._next = (self._next + 1) % self._size

    def pick(self, rng: random.Random) -> T | None:
        return rng.choice(self._items) if self._items else None


def _due(queue: deque[Pending], ts: datetime) -> Pending | None:
    """The oldest follow-up of ``queue`` if its cause came strictly before ``ts``."""
    return queue[0] if queue and queue[0][0] < ts else None


def _birthday(c: Customer, today: date) -> str:
    """A birth date agreeing with the customer's age today, on a day of the year taken from their id."""
    day = date(2001, 1, 1) + timedelta(days=int(c.customer_id.removeprefix("cus_"), 16) % 365)
    born = day.replace(year=today.year - c.age)
    return (born.replace(year=born.year - 1) if day.replace(year=today.year) > today else born).isoformat()


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _total(lines: dict[str, int]) -> Decimal:
    return sum((_BY_ID[pid].price * qty for pid, qty in lines.items()), Decimal(0)).quantize(CENT)


class RetailSimulator:
    """Generates batches of messages; keeps per-customer journey state between batches."""

    def __init__(
        self, seed: int = 7, customers: int = 2000, mix: TrafficMix = TrafficMix(), bad_fraction: float = 0.0
    ) -> None:
        if customers < 1 or not 0.0 <= bad_fraction <= 1.0:
            raise ValueError("need customers >= 1 and 0 <= bad_fraction <= 1")
        weights = {f.name: float(getattr(mix, f.name)) for f in fields(mix)}
        if any(w < 0 for w in weights.values()) or sum(weights.values()) - weights["abandon"] <= 0:
            raise ValueError("mix weights must be >= 0 and some step other than 'abandon' must be > 0")
        self._rng = random.Random(seed)
        self._steps = list(weights)
        self._cum_weights = list(accumulate(weights.values()))
        self._bad_fraction = bad_fraction
        self._customers: list[Customer] = []
        seen: set[str] = set()
        while len(self._customers) < customers:  # identifiers are unique per person
            c = cat.new_customer(self._rng)
            if not seen & {c.customer_id, c.email, c.phone}:
                seen |= {c.customer_id, c.email, c.phone}
                self._customers.append(c)
        self._business = self._customers[: max(1, customers // 25)]  # who buys on invoice
        # dicts are insertion ordered, so picks are deterministic; a checkout is in exactly one stage
        self._carts: dict[str, Customer] = {}
        self._big_carts: dict[str, Customer] = {}  # carts of two products or more: what a removal picks from
        self._started: dict[str, Customer] = {}  # Checkout Started
        self._entered: dict[str, Customer] = {}  # Payment Info Entered
        self._authorised: dict[str, Customer] = {}  # payment.authorised
        self._uncaptured: dict[str, _Order] = {}  # by order_id, oldest first
        self._captured: _Recent[_Order] = _Recent(RECENT)
        self._receipts: _Recent[_Receipt] = _Recent(RECENT)
        self._open_complaints: deque[tuple[datetime, str, Customer]] = deque(maxlen=PENDING)
        self._open_cases: deque[tuple[datetime, str, str | None, Customer, str]] = deque(maxlen=PENDING)
        self._unanswered: deque[tuple[datetime, str, Customer]] = deque(maxlen=PENDING)  # cases with no reply
        self._surveys_due: deque[tuple[datetime, str, Customer]] = deque(maxlen=PENDING)  # closed cases
        self._refunds_due: deque[tuple[datetime, _Order, Decimal, str]] = deque(maxlen=PENDING)
        self._invoices_due: deque[tuple[datetime, str, Customer, Decimal]] = deque(maxlen=PENDING)
        self._follow_ups: deque[Callable[[datetime], Generated]] = deque()  # emitted next, before any step
        self._follow_ups.extend(partial(self._product_upsert, p=p) for p in cat.PRODUCTS)  # the catalogue first
        self._to_ship: deque[tuple[datetime, _Order]] = deque(maxlen=PENDING)
        self._in_transit: deque[tuple[datetime, _Order]] = deque(maxlen=PENDING)
        self._delivered: _Recent[_Order] = _Recent(RECENT)
        self._members = self._customers[-max(1, int(customers * cat.MEMBER_SHARE)) :]
        self._memberships: dict[str, tuple[str, str, datetime]] = {}  # customer_id -> (status, plan, expiry)
        self._registrations: deque[tuple[datetime, Customer, dict[str, Any]]] = deque(maxlen=PENDING)
        self._seq = 0
        self._last = datetime.min.replace(tzinfo=UTC)

    def next_batch(self, now: datetime, n: int) -> list[Generated]:
        """``n`` outputs stamped within 50 ms before ``now`` (never after), non-decreasing in list order."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        offsets = sorted((self._rng.randrange(50_000) for _ in range(n)), reverse=True)
        out: list[Generated] = []
        for offset in offsets:
            ts = min(now, max(now - timedelta(microseconds=offset), self._last))
            self._last = ts
            out.append(self._bad(ts) if self._rng.random() < self._bad_fraction else self._step(ts))
        return out

    # -- journey steps ------------------------------------------------------------------------------------

    def _step(self, ts: datetime) -> Generated:
        if self._follow_ups:
            return self._follow_ups.popleft()(ts)
        for _ in range(100):  # abandon and a step with nothing to do (no reply due …) emit nothing: draw again
            step = self._rng.choices(self._steps, cum_weights=self._cum_weights)[0]
            result: Generated | None = getattr(self, f"_{step}")(ts)
            if result is not None:
                return result
        return self._browse(ts)

    def _browse(self, ts: datetime, c: Customer | None = None) -> Generated:
        c = c or self._pick()
        p = self._rng.choice(cat.PRODUCTS)
        return self._track(c, ts, "Product Viewed", self._product(p, 1, c))

    def _new_device(self, ts: datetime) -> Generated:
        c = self._pick()
        if c.identified:
            c.anonymous_id, c.identified = self._uuid(), False
        return self._browse(ts, c)

    def _add_to_cart(self, ts: datetime, c: Customer | None = None) -> Generated:
        c = c or self._pick()
        if not c.identified:
            return self._identify(c, ts)
        if c.cart_id is None:
            c.cart_id = f"cart_{self._hex()}"
            self._carts[c.customer_id] = c
        self._leave_checkout(c)
        pool = [_BY_ID[pid] for pid in c.cart] if len(c.cart) >= 6 else cat.PRODUCTS
        p = self._rng.choice(pool)
        qty = self._rng.choices((1, 2, 3), (80, 15, 5))[0]
        c.cart[p.product_id] = min(c.cart.get(p.product_id, 0) + qty, 10)
        if len(c.cart) >= 2:
            self._big_carts[c.customer_id] = c
        return self._track(c, ts, "Product Added", self._product(p, qty, c) | {"cart_id": c.cart_id})

    def _view_cart(self, ts: datetime) -> Generated:
        c = self._pick(self._carts)
        if c.cart_id is None:
            return self._browse(ts, c)
        if not c.identified:
            return self._identify(c, ts)
        return self._track(c, ts, "Cart Viewed", {"cart_id": c.cart_id} | self._products(c.currency, c.cart))

    def _remove_from_cart(self, ts: datetime) -> Generated:
        c = self._pick(self._big_carts)
        if c.cart_id is None or len(c.cart) < 2:
            return self._add_to_cart(ts, c)
        if not c.identified:
            return self._identify(c, ts)
        self._leave_checkout(c)
        pid = self._rng.choice(list(c.cart))
        qty = c.cart.pop(pid)
        if len(c.cart) < 2:
            del self._big_carts[c.customer_id]
        return self._track(c, ts, "Product Removed", self._product(_BY_ID[pid], qty, c) | {"cart_id": c.cart_id})

    def _checkout(self, ts: datetime) -> Generated:
        c = self._pick(self._carts)
        if c.cart_id is None:
            return self._add_to_cart(ts, c)
        if not c.identified:
            return self._identify(c, ts)
        if c.order_id is not None:
            return self._advance(c, ts)
        c.order_id = f"W-{self._hex(10).upper()}"
        self._started[c.customer_id] = c
        props = {"order_id": c.order_id, "cart_id": c.cart_id, "value": float(_total(c.cart))}
        return self._track(c, ts, "Checkout Started", props | self._products(c.currency, c.cart))

    def _payment_info(self, ts: datetime) -> Generated:
        return self._advance(self._pick(self._started), ts) if self._started else self._checkout(ts)

    def _payment_authorisation(self, ts: datetime) -> Generated:
        return self._advance(self._pick(self._entered), ts) if self._entered else self._payment_info(ts)

    def _web_order(self, ts: datetime) -> Generated:
        return self._advance(self._pick(self._authorised), ts) if self._authorised else self._payment_authorisation(ts)

    def _advance(self, c: Customer, ts: datetime) -> Generated:
        """The next step of ``c``'s checkout: Payment Info Entered, payment.authorised, then Order Completed."""
        if not c.identified:
            return self._identify(c, ts)
        if c.payment_method is None:
            return self._enter_payment_info(c, ts)
        if c.payment_id is None:
            return self._authorise(c, ts)
        return self._complete(c, ts)

    def _enter_payment_info(self, c: Customer, ts: datetime) -> Generated:
        c.payment_method = self._rng.choice(cat.PAYMENT_METHODS[c.currency])
        self._entered[c.customer_id] = self._started.pop(c.customer_id)
        shipping = self._rng.choices(cat.SHIPPING_METHODS, cat.SHIPPING_WEIGHTS)[0]
        props = {"order_id": c.order_id, "cart_id": c.cart_id, "step": 2, "shipping_method": shipping}
        return self._track(c, ts, "Payment Info Entered", props | {"payment_method": c.payment_method})

    def _authorise(self, c: Customer, ts: datetime) -> Generated:
        c.payment_id = f"pay_{self._hex()}"
        self._authorised[c.customer_id] = self._entered.pop(c.customer_id)
        props = {"payment_id": c.payment_id, "order_id": c.order_id, "amount": _money(_total(c.cart))}
        props |= {"currency": c.currency, "method": c.payment_method}
        return self._native("payment", "payment.authorised", ts, self._payer(c), props)

    def _complete(self, c: Customer, ts: datetime) -> Generated:
        assert c.order_id and c.payment_id and c.payment_method, "only an authorised checkout completes"
        total = float(_total(c.cart))
        props = {"order_id": c.order_id, "cart_id": c.cart_id, "total": total, "revenue": total}
        msg = self._track(c, ts, "Order Completed", props | self._products(c.currency, c.cart))
        self._uncaptured[c.order_id] = _Order(c.order_id, c, c.cart, c.payment_id, c.payment_method, ts)
        if len(self._uncaptured) > PENDING:
            del self._uncaptured[next(iter(self._uncaptured))]
        self._drop_cart(c)
        return msg

    # -- after the order --------------------------------------------------------------------------------------

    def _payment_capture(self, ts: datetime) -> Generated | None:
        order = next(iter(self._uncaptured.values()), None)
        if order is None or order.placed_at >= ts:
            return None
        del self._uncaptured[order.order_id]
        order.captured_at = ts
        self._captured.add(order)
        self._to_ship.append((ts, order))
        return self._payment(ts, "payment.captured", order, order.total)

    def _order_cancellation(self, ts: datetime) -> Generated | None:
        if not self._uncaptured:
            return None
        order = self._uncaptured[next(reversed(self._uncaptured))]  # customers cancel soon after ordering
        c = order.customer
        if order.placed_at >= ts:
            return None
        if not c.identified:
            return self._identify(c, ts)
        del self._uncaptured[order.order_id]
        reason = self._rng.choice(cat.CANCEL_REASONS)
        props = {"order_id": order.order_id, "total": float(order.total), "reason": reason}
        return self._track(c, ts, "Order Cancelled", props | self._products(c.currency, order.lines))

    def _order_refund(self, ts: datetime) -> Generated | None:
        order = self._captured.pick(self._rng)
        if order is None or order.charged_back or not (order.captured_at and order.captured_at < ts):
            return None
        c = order.customer
        if not c.identified:
            return self._identify(c, ts)
        lines = self._take_back(order.lines, order.refunded, whole=0.4)
        if not lines:
            return None  # refunded in full already
        amount, reason = _total(lines), self._rng.choice(cat.REFUND_REASONS)
        self._refunds_due.append((ts, order, amount, reason))
        props = {"order_id": order.order_id, "total": float(amount), "reason": reason}
        return self._track(c, ts, "Order Refunded", props | self._products(c.currency, lines))

    def _payment_refund(self, ts: datetime) -> Generated | None:
        if _due(self._refunds_due, ts) is None:
            return None
        _, order, amount, reason = self._refunds_due.popleft()
        return self._payment(ts, "payment.refunded", order, amount, reason=reason)

    def _chargeback(self, ts: datetime) -> Generated | None:
        order = self._captured.pick(self._rng)
        if order is None or order.refunded or order.charged_back or not (order.captured_at and order.captured_at < ts):
            return None
        order.charged_back = True
        reason = self._rng.choices(cat.CHARGEBACK_REASONS, cat.CHARGEBACK_REASON_WEIGHTS)[0]
        return self._payment(ts, "payment.chargeback", order, order.total, reason_code=reason)

    def _abandon(self, ts: datetime) -> None:
        if self._carts:
            self._drop_cart(self._pick(self._carts))

    def _pos_sale(self, ts: datetime, keep: bool = True) -> Generated:
        """A till receipt; ``keep`` it for later returns (a deliberately broken sale is not kept)."""
        c = self._pick()
        stores = [s for s in cat.STORES if s.country == c.country]
        store = next((s for s in stores if s.city == c.city), None) or self._rng.choice(stores)
        till = self._rng.choice(store.tills)
        lines: dict[str, int] = {}
        for p in self._rng.sample(cat.PRODUCTS, self._rng.randint(1, 5)):
            lines[p.product_id] = self._rng.choices((1, 2, 3, 4), (70, 20, 6, 4))[0]
        items = [self._product(_BY_ID[pid], qty, None, native=True) for pid, qty in lines.items()]
        ids = {"loyalty_id": c.loyalty_id} if c.loyalty_id else {}
        if not ids or self._rng.random() < 0.3:
            ids["customer_id"] = c.customer_id
        self._seq += 1
        total = _total(lines)
        tender = self._rng.choices(cat.TENDERS, cat.TENDER_WEIGHTS)[0]
        tenders = [{"method": tender, "amount": _money(total)}]
        if tender == "voucher" and total > 10:  # a 10 voucher, the rest by card
            tenders = [{"method": "voucher", "amount": "10.00"}, {"method": "card", "amount": _money(total - 10)}]
        props: dict[str, Any] = {
            "store_id": store.store_id,
            "till_id": till,
            "receipt_id": f"{till}-{self._seq:07d}",
        }
        props |= {"total": _money(total), "currency": store.currency, "line_items": items, "tenders": tenders}
        if keep:
            self._receipts.add(_Receipt(props["receipt_id"], store, dict(ids), lines, tender, ts))
        return self._native("pos", "pos.sale", ts, ids, props)

    def _pos_return(self, ts: datetime) -> Generated | None:
        r = self._receipts.pick(self._rng)
        if r is None or r.sold_at >= ts:
            return None
        lines = self._take_back(r.lines, r.returned, whole=0.15)
        if not lines:
            return None  # everything on it came back already
        till = self._rng.choice(r.store.tills)
        self._seq += 1
        props: dict[str, Any] = {"store_id": r.store.store_id, "till_id": till, "return_id": f"{till}-R{self._seq:07d}"}
        props |= {"original_receipt_id": r.receipt_id, "total": _money(_total(lines)), "currency": r.store.currency}
        props["line_items"] = [self._product(_BY_ID[pid], qty, None, native=True) for pid, qty in lines.items()]
        props["reason"] = self._rng.choices(cat.RETURN_REASONS, cat.RETURN_REASON_WEIGHTS)[0]
        props["refund_method"] = cat.REFUND_METHODS[r.tender]
        return self._native("pos", "pos.return", ts, dict(r.ids), props)

    def _payment_failure(self, ts: datetime) -> Generated:
        reason = self._rng.choices(cat.PAYMENT_REASONS, cat.PAYMENT_REASON_WEIGHTS)[0]
        props: dict[str, Any] = {"payment_id": f"pay_{self._hex()}", "reason_code": reason}
        checkouts = self._entered or self._started
        if checkouts and self._rng.random() < 0.75:  # the customer stays in checkout and may retry
            c = self._pick(checkouts)
            method = c.payment_method or self._rng.choice(cat.PAYMENT_METHODS[c.currency])
            props |= {"order_id": c.order_id, "amount": _money(_total(c.cart)), "method": method}
            ids = self._payer(c)
        else:  # a card declined at a store till
            c = self._pick()
            amount = Decimal(self._rng.randint(300, 25_000)) / 100
            props |= {"amount": _money(amount), "method": "card"}
            ids = {"loyalty_id": c.loyalty_id} if c.loyalty_id else {"customer_id": c.customer_id}
        return self._native("payment", "payment.failed", ts, ids, props | {"currency": c.currency})

    def _invoice(self, ts: datetime) -> Generated:
        c = self._rng.choice(self._business)
        products = self._rng.sample(cat.PRODUCTS, self._rng.randint(1, 3))
        amount = _total({p.product_id: self._rng.randint(10, 60) for p in products})  # bought in bulk
        self._seq += 1
        invoice_id = f"INV-{self._seq:07d}"
        props = {"invoice_id": invoice_id, "order_id": f"B2B-{self._hex(8).upper()}", "amount": _money(amount)}
        terms = self._rng.choices(cat.INVOICE_TERMS_DAYS, cat.INVOICE_TERMS_WEIGHTS)[0]  # < 0: exported late
        props |= {"currency": c.currency, "due_at": (ts + timedelta(days=terms)).isoformat(timespec="microseconds")}
        if self._rng.random() < 0.95:  # the rest are never paid
            self._invoices_due.append((ts, invoice_id, c, amount))
        return self._native("payment", "payment.invoice_issued", ts, self._payer(c), props)

    def _invoice_payment(self, ts: datetime) -> Generated | None:
        if _due(self._invoices_due, ts) is None:
            return None
        _, invoice_id, c, amount = self._invoices_due.popleft()
        props = {"invoice_id": invoice_id, "amount": _money(amount), "currency": c.currency}
        props["method"] = cat.INVOICE_METHODS[c.currency]
        return self._native("payment", "payment.invoice_paid", ts, self._payer(c), props)

    def _complaint(self, ts: datetime, complaint: bool = True) -> Generated:
        c = self._pick()
        kind = self._rng.choices(
            cat.SOCIAL_KINDS, cat.COMPLAINT_KIND_WEIGHTS if complaint else cat.PRAISE_KIND_WEIGHTS
        )[0]
        if kind == "social.mention":
            platform = self._rng.choices(cat.PLATFORMS, cat.PLATFORM_WEIGHTS)[0]
        else:
            platform = self._rng.choices(cat.CONVERSATION_PLATFORMS, cat.CONVERSATION_PLATFORM_WEIGHTS)[0]
        # mentions come flagged as complaints; comments and messages often only read as angry (sentiment)
        flagged = complaint and (kind == "social.mention" or self._rng.random() < 0.6)
        texts, low, high = (cat.COMPLAINTS, -0.95, -0.3 if flagged else -0.5) if complaint else (cat.PRAISE, 0.4, 0.98)
        text = self._rng.choice(texts).format(product=self._rng.choice(cat.PRODUCTS).name, city=c.city)
        message_id = f"m_{self._hex()}"
        props: dict[str, Any] = {
            "message_id": message_id,
            "platform": platform,
            "handle": "@" + c.email.split("@")[0].replace(".", "_"),
            "text": text,
            "sentiment": round(self._rng.uniform(low, high), 2),
            "complaint": flagged,
        }
        if kind == "social.comment":
            props["post_id"] = f"{platform}_post_{self._rng.randrange(cat.BRAND_POSTS):03d}"
        elif kind == "social.direct_message":
            props["thread_id"] = f"dm_{self._hex(10)}"
        if complaint:
            self._open_complaints.append((ts, message_id, c))
        return self._native("social", kind, ts, {"email": c.email}, props)

    def _praise(self, ts: datetime) -> Generated:
        return self._complaint(ts, complaint=False)

    def _support_reply(self, ts: datetime) -> Generated | None:
        if _due(self._open_complaints, ts) is None:
            return None  # nothing to answer yet: draw another step
        _, message_id, c = self._open_complaints.popleft()
        agent = self._rng.choice(cat.SUPPORT_AGENTS)
        if self._rng.random() < 0.5:  # it becomes a case (opened next), closed later
            case_id = self._case_id()
            self._open_cases.append((ts, case_id, message_id, c, agent))
            props = {"case_id": case_id, "channel": "social", "subject": "Social complaint", "message_id": message_id}
            opening = partial(self._native, "support", "support.case_opened", ids={"email": c.email}, props=props)
            self._follow_ups.append(opening)
        text = f"Hi {c.first_name}, we're sorry about this. We've sent you a DM so we can sort it out."
        props = {"message_id": message_id, "agent": agent, "text": text}
        return self._native("support", "support.complaint_responded", ts, {"email": c.email}, props)

    def _case_closure(self, ts: datetime) -> Generated | None:
        if _due(self._open_cases, ts) is None:
            return None
        _, case_id, message_id, c, agent = self._open_cases.popleft()
        props = {"case_id": case_id, "agent": agent, "resolution": self._rng.choice(cat.CASE_RESOLUTIONS)}
        if message_id is not None:
            props["message_id"] = message_id
        self._surveys_due.append((ts, case_id, c))
        return self._native("support", "support.case_closed", ts, {"email": c.email}, props)

    def _case_id(self) -> str:
        self._seq += 1
        return f"CS-{self._seq:07d}"

    # -- service cases from every channel, and feedback ------------------------------------------------------

    def _service_case(self, ts: datetime) -> Generated | None:
        order = self._delivered.pick(self._rng)
        if order is None:
            return None
        c, product = order.customer, _BY_ID[next(iter(order.lines))]
        channel = self._rng.choices(cat.CASE_CHANNELS, cat.CASE_CHANNEL_WEIGHTS)[0]
        category, subject = self._rng.choice(cat.CASE_SUBJECTS)
        case_id = self._case_id()
        self._unanswered.append((ts, case_id, c))
        props = {"case_id": case_id, "channel": channel, "category": category, "order_id": order.order_id}
        props |= {"product_id": product.product_id, "subject": subject.format(product=product.name)}
        if self._rng.random() < 0.1:
            props["priority"] = "high"
        return self._native("support", "support.case_opened", ts, self._payer(c), props)

    def _case_reply(self, ts: datetime) -> Generated | None:
        if _due(self._unanswered, ts) is None:
            return None
        _, case_id, c = self._unanswered.popleft()
        agent = self._rng.choice(cat.SUPPORT_AGENTS)
        self._open_cases.append((ts, case_id, None, c, agent))
        props = {"case_id": case_id, "note_id": f"n_{self._hex(10)}", "agent": agent, "reply": True}
        props["text"] = f"Hi {c.first_name}, thanks for getting in touch: we're on it."
        return self._native("support", "support.note_added", ts, self._payer(c), props)

    def _survey(self, ts: datetime) -> Generated | None:
        closed = _due(self._surveys_due, ts)
        if closed is not None:
            self._surveys_due.popleft()
            c, about = closed[2], {"survey_id": "after-case", "case_id": closed[1]}
        else:
            order = self._delivered.pick(self._rng)
            if order is None:
                return None
            c, about = order.customer, {"survey_id": "after-delivery", "order_id": order.order_id}
        nps = self._rng.choices(range(11), cat.NPS_WEIGHTS)[0]
        props: dict[str, Any] = {"response_id": f"r_{self._hex(12)}", "nps": nps, "csat": max(1, (nps + 1) // 2)}
        if nps <= 6 and self._rng.random() < 0.5:
            props["text"] = self._rng.choice(cat.DETRACTOR_TEXTS)
        return self._native("support", "survey.answered", ts, self._payer(c), props | about)

    def _review(self, ts: datetime) -> Generated | None:
        order = self._delivered.pick(self._rng)
        if order is None or not order.customer.identified:
            return None
        product = _BY_ID[self._rng.choice(sorted(order.lines))]
        rating = self._rng.choices((1, 2, 3, 4, 5), cat.RATING_WEIGHTS)[0]
        props = {"product_id": product.product_id, "review_id": f"rev_{self._hex(10)}", "rating": rating}
        props |= {"review_body": cat.REVIEW_TEXTS[rating - 1].format(product=product.name), "order_id": order.order_id}
        return self._track(order.customer, ts, "Product Reviewed", props)

    def _product_upsert(self, ts: datetime, p: cat.CatalogueProduct) -> Generated:
        """A catalogue entry: warranty and expected life by category, and for every fourth product the next
        one of its category as its successor."""
        warranty, life = cat.PRODUCT_LIFE.get(p.category, (None, None))
        same = [q for q in cat.PRODUCTS if q.category == p.category]
        successor = same[same.index(p) + 1].product_id if int(p.product_id[1:]) % 4 == 0 and p != same[-1] else None
        props: dict[str, Any] = {"product_id": p.product_id, "name": p.name, "category": p.category}
        props["price"] = _money(p.price)
        props |= {"warranty_months": warranty, "lifespan_months": life, "successor_id": successor}
        env: dict[str, Any] = {"event_id": f"catalog-{p.product_id}-v1", "source": "catalog"}
        env["type"] = "product.upserted"
        env |= {"occurred_at": ts.isoformat(timespec="microseconds"), "properties": props}
        return Generated("catalog", p.product_id, env)

    def _shipment(self, ts: datetime) -> Generated | None:
        if _due(self._to_ship, ts) is None:
            return None
        _, order = self._to_ship.popleft()
        self._in_transit.append((ts, order))
        carrier = self._rng.choice(cat.CARRIERS)
        days = self._rng.choice((2, 3, 5))
        promised = order.placed_at + timedelta(days=days) if self._rng.random() < 0.9 else ts - timedelta(days=1)
        props = {
            "order_id": order.order_id,
            "carrier": carrier,
            "tracking_number": f"{carrier[:3].upper()}{self._hex(10)}",
        }
        props["promised_by"] = promised.isoformat(timespec="microseconds")  # one in ten shipped past its promise
        return self._native("web", "order.shipped", ts, self._payer(order.customer), props)

    def _delivery(self, ts: datetime) -> Generated | None:
        if _due(self._in_transit, ts) is None:
            return None
        _, order = self._in_transit.popleft()
        if self._rng.random() < 0.1:  # nobody home: tried again later
            self._in_transit.append((ts, order))
            props = {"order_id": order.order_id, "reason": self._rng.choice(cat.DELIVERY_FAILURES)}
            return self._native("web", "order.delivery_failed", ts, self._payer(order.customer), props)
        self._delivered.add(order)
        return self._native("web", "order.delivered", ts, self._payer(order.customer), {"order_id": order.order_id})

    def _order_return(self, ts: datetime) -> Generated | None:
        order = self._delivered.pick(self._rng)
        if order is None or order.placed_at >= ts:
            return None
        lines = self._take_back(order.lines, order.refunded, whole=0.3)
        if not lines:
            return None
        props = {"order_id": order.order_id, "return_id": f"RET-{self._hex(8)}", "product_ids": sorted(lines)}
        props["reason"] = self._rng.choice(cat.REFUND_REASONS)
        return self._native("web", "order.returned", ts, self._payer(order.customer), props)

    # -- association members ---------------------------------------------------------------------------------

    def _membership(self, ts: datetime) -> Generated | None:
        """A member joins (or rejoins), or an active member renews (most), lapses or cancels."""
        active = [c for c in self._members if self._member_status(c) == "active"]
        if active and self._rng.random() < 0.6:
            c = self._rng.choice(active)
            kind = self._rng.choices(("renewed", "lapsed", "cancelled"), (60, 25, 15))[0]
        else:
            c, kind = self._rng.choice(self._members), "started"
            if self._member_status(c) == "active":
                return None
        if not c.identified:
            return self._identify(c, ts)
        status, plan, expiry = self._memberships.get(c.customer_id, ("none", "", ts))
        props: dict[str, Any] = {"membership_id": f"M-{c.customer_id.removeprefix('cus_')[:8].upper()}"}
        if kind in ("lapsed", "cancelled"):
            self._memberships[c.customer_id] = (kind, plan, expiry)
            return self._native("web", f"membership.{kind}", ts, self._payer(c), props)
        if kind == "started":
            plan = self._rng.choices(list(cat.MEMBERSHIP_PLANS), cat.MEMBERSHIP_PLAN_WEIGHTS)[0]
            if status == "none":  # a new member: the chapter of their city
                group = {"type": "group", "groupId": f"chapter-{c.city.lower().replace(' ', '-')}"}
                self._follow_ups.append(partial(self._web, c, body=group | {"traits": {"name": f"{c.city} chapter"}}))
        elif plan == "trial":
            plan = "standard"  # a trial renews as a full membership
        fees, months = cat.MEMBERSHIP_PLANS[plan]
        expiry = max(expiry, ts) + timedelta(days=365 if months == 12 else 30 * months)
        self._memberships[c.customer_id] = ("active", plan, expiry)
        props |= {"plan": plan, "fee": fees[c.currency], "currency": c.currency}
        props["expires_at"] = expiry.isoformat(timespec="microseconds")
        return self._native("web", f"membership.{kind}", ts, self._payer(c), props)

    def _member_status(self, c: Customer) -> str:
        known = self._memberships.get(c.customer_id)
        return known[0] if known else "none"

    def _association_event(self, ts: datetime) -> Generated | None:
        """An active member registers for an event weeks ahead, checks in at a members' evening happening
        now, or cancels their oldest registration."""
        active = [c for c in self._members if self._member_status(c) == "active"]
        roll = self._rng.random()
        if roll < 0.2 and _due(self._registrations, ts) is not None:
            _, c, props = self._registrations.popleft()
            return self._native("web", "association_event.cancelled", ts, self._payer(c), props)
        if not active:
            return None
        c = self._rng.choice(active)
        if roll < 0.6:
            name = self._rng.choice(cat.ASSOCIATION_EVENTS)
            starts = datetime.combine(ts.date() + timedelta(days=self._rng.randint(7, 90)), time(18), UTC)
            props = {"event_id": f"{name.lower().replace(' ', '-')}-{starts:%Y%m%d}", "event_name": name}
            props["starts_at"] = starts.isoformat()
            if self._rng.random() < 0.25:
                self._registrations.append((ts, c, props))
            return self._native("web", "association_event.registered", ts, self._payer(c), props)
        starts = ts.replace(minute=0, second=0, microsecond=0)
        props = {"event_id": f"members-evening-{starts:%Y%m%d}", "event_name": "Members' evening"}
        props["starts_at"] = starts.isoformat()
        return self._native("web", "association_event.attended", ts, self._payer(c), props)

    # -- consent ---------------------------------------------------------------------------------------------

    def _consent_opt_in(self, ts: datetime) -> Generated | None:
        c = self._pick()
        missing = [channel for channel in cat.SIGNUP_CONSENT if channel not in c.consents]
        if not (c.known and missing):
            return None
        if not c.identified:
            return self._identify(c, ts)  # signs in to the preference centre first
        return self._consent(ts, c, self._rng.choice(missing), "preference_centre")

    def _consent_withdrawal(self, ts: datetime) -> Generated | None:
        c = self._pick()
        if not c.consents:
            return None
        if not c.identified:
            return self._identify(c, ts)
        channel = self._rng.choice(c.consents)
        method = "unsubscribe_link" if channel == "email" and self._rng.random() < 0.7 else "preference_centre"
        return self._consent(ts, c, channel, method, granted=False)

    def _email_campaign(self, ts: datetime) -> Generated | None:
        """A marketing e-mail to a consented customer, as the e-mail service reports it through Segment:
        delivered (or bounced), perhaps opened and clicked, rarely unsubscribed from or marked as spam
        (which withdraws the consent). The later steps follow as the next outputs."""
        c = self._pick()
        if not (c.identified and "email" in c.consents):
            return None
        campaign = self._rng.choice(cat.CAMPAIGNS)
        props = {"email_id": self._hex(10), "campaign_id": campaign, "campaign_name": campaign.replace("-", " ")}
        roll = self._rng.random()
        events = ["Email Bounced"] if roll < cat.EMAIL_BOUNCE_SHARE else ["Email Delivered"]
        if events == ["Email Delivered"] and roll < cat.EMAIL_OPEN_SHARE:
            events += ["Email Opened", "Email Link Clicked"][: 1 + (self._rng.random() < cat.EMAIL_CLICK_SHARE)]
        if events[0] == "Email Delivered" and self._rng.random() < cat.EMAIL_OPT_OUT_SHARE:
            events.append(self._rng.choices(("Unsubscribed", "Email Marked as Spam"), (3, 1))[0])
            c.consents.remove("email")
        for event in events[1:]:
            self._follow_ups.append(partial(self._email_event, c, event=event, props=props))
        return self._email_event(c, ts, events[0], props)

    def _email_event(self, c: Customer, ts: datetime, event: str, props: dict[str, Any]) -> Generated:
        context = {"library": dict(LIBRARY), "traits": {"email": c.email}}  # the address it went to
        return self._web(c, ts, {"type": "track", "event": event, "properties": props, "context": context})

    def _push_campaign(self, ts: datetime) -> Generated | None:
        c = self._pick()  # the shop's app asks the phone for leave to notify: no consent record of crmhub's
        if not c.identified:
            return None
        props = {"campaign_id": self._rng.choice(cat.CAMPAIGNS)}
        if self._rng.random() < cat.PUSH_TAP_SHARE:
            self._follow_ups.append(partial(self._track, c, event="Push Notification Tapped", props=props))
        return self._track(c, ts, "Push Notification Received", props)

    def _consent(self, ts: datetime, c: Customer, channel: str, method: str, granted: bool = True) -> Generated:
        if granted:
            c.consents.append(channel)
        else:
            c.consents.remove(channel)
        props = {"channel": channel, "purpose": "marketing", "method": method}
        return self._track(c, ts, "consent.granted" if granted else "consent.withdrawn", props)

    def _identify(self, c: Customer, ts: datetime) -> Generated:
        c.identified = True
        if not c.known and self._rng.random() < cat.SIGNUP_SHARE:  # the sign-up form sends its opt-ins next
            for channel, share in cat.SIGNUP_CONSENT.items():
                if self._rng.random() < share:
                    self._follow_ups.append(partial(self._consent, c=c, channel=channel, method="signup_form"))
        c.known = True
        traits: dict[str, Any] = {
            "email": c.email, "phone": c.phone, "name": f"{c.first_name} {c.last_name}",
            "first_name": c.first_name, "last_name": c.last_name, "age": c.age, "gender": c.gender,
            "city": c.city, "country": c.country, "children": c.children, "birthday": _birthday(c, ts.date()),
        }  # fmt: skip
        if c.loyalty_id:
            traits["loyalty_id"] = c.loyalty_id
        return self._web(c, ts, {"type": "identify", "traits": traits})

    # -- deliberately invalid outputs -----------------------------------------------------------------------

    def _bad(self, ts: datetime) -> Generated:
        kind = self._rng.choice(BAD_KINDS)
        if kind == "invalid_json":
            msg = self._browse(ts)
            raw = json.dumps(msg.payload).encode()
            return Generated("web", msg.key, raw[: -self._rng.randint(5, 40)])
        sale = self._pos_sale(ts, keep=False)
        assert isinstance(sale.payload, dict)
        if kind == "wrong_type":
            sale.payload["properties"]["total"] = "lots"
        else:
            del sale.payload[self._rng.choice(("event_id", "occurred_at"))]
        return sale

    # -- helpers --------------------------------------------------------------------------------------------

    def _pick(self, among: dict[str, Customer] | None = None) -> Customer:
        if among:
            return among[self._rng.choice(list(among))]
        return self._rng.choice(self._customers)

    def _leave_checkout(self, c: Customer) -> None:
        c.order_id = c.payment_method = c.payment_id = None
        for stage in (self._started, self._entered, self._authorised):
            stage.pop(c.customer_id, None)

    def _drop_cart(self, c: Customer) -> None:
        self._leave_checkout(c)
        c.cart_id, c.cart = None, {}
        self._carts.pop(c.customer_id, None)
        self._big_carts.pop(c.customer_id, None)

    def _uuid(self) -> str:
        return cat.random_uuid(self._rng)

    def _hex(self, digits: int = 12) -> str:
        return f"{self._rng.getrandbits(4 * digits):0{digits}x}"

    def _product(self, p: cat.CatalogueProduct, qty: int, c: Customer | None, native: bool = False) -> dict[str, Any]:
        price: str | float = _money(p.price) if native else float(p.price)
        props: dict[str, Any] = {"product_id": p.product_id, "sku": p.sku, "name": p.name}
        props |= {"category": p.category, "price": price, "quantity": qty}
        return props | ({"currency": c.currency} if c else {})

    def _products(self, currency: str, lines: dict[str, int]) -> dict[str, Any]:
        products = [self._product(_BY_ID[pid], qty, None) for pid, qty in lines.items()]
        return {"currency": currency, "products": products}

    def _take_back(self, lines: dict[str, int], done: dict[str, int], whole: float) -> dict[str, int]:
        """Some of what is left of ``lines`` after ``done`` (all of it with probability ``whole``, else some
        of one line), counted into ``done``; empty when nothing is left."""
        left = {pid: qty - done.get(pid, 0) for pid, qty in lines.items() if qty > done.get(pid, 0)}
        if left and self._rng.random() >= whole:
            pid = self._rng.choice(list(left))
            left = {pid: self._rng.randint(1, left[pid])}
        for pid, qty in left.items():
            done[pid] = done.get(pid, 0) + qty
        return left

    def _payment(self, ts: datetime, type_: str, order: _Order, amount: Decimal, **extra: str) -> Generated:
        c = order.customer
        props = {"payment_id": order.payment_id, "order_id": order.order_id, "amount": _money(amount)}
        props |= {"currency": c.currency, "method": order.method, **extra}
        return self._native("payment", type_, ts, self._payer(c), props)

    @staticmethod
    def _payer(c: Customer) -> dict[str, Any]:
        return {"customer_id": c.customer_id, "email": c.email}

    def _track(self, c: Customer, ts: datetime, event: str, props: dict[str, Any]) -> Generated:
        return self._web(c, ts, {"type": "track", "event": event, "properties": props})

    def _web(self, c: Customer, ts: datetime, body: dict[str, Any]) -> Generated:
        msg: dict[str, Any] = {"type": body["type"], "messageId": self._uuid(), "anonymousId": c.anonymous_id}
        if c.identified:
            msg["userId"] = c.customer_id
        msg |= {"timestamp": ts.isoformat(timespec="microseconds"), "context": {"library": dict(LIBRARY)}}
        return Generated("web", c.anonymous_id, msg | body)

    def _native(self, source: str, type_: str, ts: datetime, ids: dict[str, Any], props: dict[str, Any]) -> Generated:
        env: dict[str, Any] = {"event_id": self._uuid(), "source": source, "type": type_}
        env |= {"occurred_at": ts.isoformat(timespec="microseconds"), **ids, "properties": props}
        return Generated(source, str(next(iter(ids.values()))), env)
