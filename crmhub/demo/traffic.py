"""Realistic synthetic retail traffic: Segment web messages plus native store/payment/social/support events.

Pure and deterministic for a seed (no I/O, no clock reads). Each customer walks a journey: anonymous
browsing, identify, cart, checkout, then an order or an abandoned cart; they also shop in stores, have
payments fail and complain (or rave) on social media, and support replies to some complaints. Web outputs
are Segment tracking API messages; every other source emits dicts matching ``schemas.events``.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any

from crmhub.demo import catalogue as cat
from crmhub.demo.catalogue import Customer

CENT = Decimal("0.01")
LIBRARY = {"name": "crmhub-demo", "version": "0.1.0"}
BAD_KINDS = ("invalid_json", "wrong_type", "missing_field")


@dataclass(frozen=True)
class TrafficMix:
    """Relative weights of journey steps; each step emits at most one output (``abandon`` emits none).

    With the defaults browsing and cart activity are ~75% of outputs, ~13% of finished carts are abandoned
    (abandon / (abandon + web_order)), ~2% of outputs are complaints and ~1.5% payment failures.
    """

    browse: float = 46.4  # Product Viewed, anonymous or identified
    new_device: float = 1.0  # an identified customer shows up with a fresh anonymousId (then browses)
    add_to_cart: float = 17.0  # Product Added (an anonymous visitor identifies first)
    remove_from_cart: float = 3.0  # Product Removed
    checkout: float = 7.0  # Checkout Started
    web_order: float = 6.0  # Order Completed
    abandon: float = 0.9  # a cart silently dies: no output
    pos_sale: float = 12.0  # pos.sale
    payment_failure: float = 1.5  # payment.failed, mostly during a web checkout
    complaint: float = 2.0  # social.mention, complaint=True
    praise: float = 1.0  # social.mention, positive
    support_reply: float = 1.2  # support.complaint_responded to the oldest open complaint


@dataclass(frozen=True)
class Generated:
    source: str  # "web" | "pos" | "payment" | "social" | "support"
    key: str  # partition key: anonymousId for web, a customer identifier otherwise
    payload: dict[str, Any] | bytes  # bytes only for deliberately invalid JSON


_BY_ID = {p.product_id: p for p in cat.PRODUCTS}


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
        self._carts: dict[str, Customer] = {}  # insertion ordered, so picks are deterministic
        self._checkouts: dict[str, Customer] = {}
        self._open_complaints: deque[tuple[str, Customer, datetime]] = deque(maxlen=1000)
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
        for _ in range(100):  # abandon and an unanswerable support_reply emit nothing: draw again
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
        return self._track(c, ts, "Product Added", self._product(p, qty, c) | {"cart_id": c.cart_id})

    def _remove_from_cart(self, ts: datetime) -> Generated:
        c = self._pick({k: c for k, c in self._carts.items() if len(c.cart) >= 2})
        if c.cart_id is None or len(c.cart) < 2:
            return self._add_to_cart(ts, c)
        if not c.identified:
            return self._identify(c, ts)
        self._leave_checkout(c)
        pid = self._rng.choice(list(c.cart))
        qty = c.cart.pop(pid)
        return self._track(c, ts, "Product Removed", self._product(_BY_ID[pid], qty, c) | {"cart_id": c.cart_id})

    def _checkout(self, ts: datetime) -> Generated:
        c = self._pick(self._carts)
        if c.cart_id is None:
            return self._add_to_cart(ts, c)
        if not c.identified:
            return self._identify(c, ts)
        if c.order_id is not None:
            return self._complete(c, ts)
        c.order_id = f"W-{self._hex(10).upper()}"
        self._checkouts[c.customer_id] = c
        props = {"order_id": c.order_id, "cart_id": c.cart_id, "value": float(_total(c.cart))}
        return self._track(c, ts, "Checkout Started", props | self._products(c))

    def _web_order(self, ts: datetime) -> Generated:
        if not self._checkouts:
            return self._checkout(ts)
        c = self._pick(self._checkouts)
        return self._identify(c, ts) if not c.identified else self._complete(c, ts)

    def _complete(self, c: Customer, ts: datetime) -> Generated:
        total = float(_total(c.cart))
        props = {"order_id": c.order_id, "cart_id": c.cart_id, "total": total, "revenue": total}
        msg = self._track(c, ts, "Order Completed", props | self._products(c))
        self._drop_cart(c)
        return msg

    def _abandon(self, ts: datetime) -> None:
        if self._carts:
            self._drop_cart(self._pick(self._carts))

    def _pos_sale(self, ts: datetime) -> Generated:
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
        return self._native("pos", "pos.sale", ts, ids, props)

    def _payment_failure(self, ts: datetime) -> Generated:
        reason = self._rng.choices(cat.PAYMENT_REASONS, cat.PAYMENT_REASON_WEIGHTS)[0]
        props: dict[str, Any] = {"payment_id": f"pay_{self._hex()}", "reason_code": reason}
        if self._checkouts and self._rng.random() < 0.75:  # the customer stays in checkout and may retry
            c = self._pick(self._checkouts)
            method = self._rng.choice(cat.PAYMENT_METHODS[c.currency])
            props |= {"order_id": c.order_id, "amount": _money(_total(c.cart)), "method": method}
            ids = {"customer_id": c.customer_id, "email": c.email}
        else:  # a card declined at a store till
            c = self._pick()
            amount = Decimal(self._rng.randint(300, 25_000)) / 100
            props |= {"amount": _money(amount), "method": "card"}
            ids = {"loyalty_id": c.loyalty_id} if c.loyalty_id else {"customer_id": c.customer_id}
        return self._native("payment", "payment.failed", ts, ids, props | {"currency": c.currency})

    def _complaint(self, ts: datetime, complaint: bool = True) -> Generated:
        c = self._pick()
        texts, low, high = (cat.COMPLAINTS, -0.95, -0.3) if complaint else (cat.PRAISE, 0.4, 0.98)
        text = self._rng.choice(texts).format(product=self._rng.choice(cat.PRODUCTS).name, city=c.city)
        message_id = f"m_{self._hex()}"
        props = {
            "message_id": message_id,
            "platform": self._rng.choices(cat.PLATFORMS, cat.PLATFORM_WEIGHTS)[0],
            "handle": "@" + c.email.split("@")[0].replace(".", "_"),
            "text": text,
            "sentiment": round(self._rng.uniform(low, high), 2),
            "complaint": complaint,
        }
        if complaint:
            self._open_complaints.append((message_id, c, ts))
        return self._native("social", "social.mention", ts, {"email": c.email}, props)

    def _praise(self, ts: datetime) -> Generated:
        return self._complaint(ts, complaint=False)

    def _support_reply(self, ts: datetime) -> Generated | None:
        if not self._open_complaints or self._open_complaints[0][2] >= ts:
            return None  # nothing to answer yet: draw another step
        message_id, c, _ = self._open_complaints.popleft()
        text = f"Hi {c.first_name}, we're sorry about this. We've sent you a DM so we can sort it out."
        props = {"message_id": message_id, "agent": self._rng.choice(cat.SUPPORT_AGENTS), "text": text}
        return self._native("support", "support.complaint_responded", ts, {"email": c.email}, props)

    def _identify(self, c: Customer, ts: datetime) -> Generated:
        c.identified = True
        traits: dict[str, Any] = {
            "email": c.email, "phone": c.phone, "name": f"{c.first_name} {c.last_name}",
            "first_name": c.first_name, "last_name": c.last_name, "age": c.age, "gender": c.gender,
            "city": c.city, "country": c.country, "children": c.children,
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
        sale = self._pos_sale(ts)
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
        c.order_id = None
        self._checkouts.pop(c.customer_id, None)

    def _drop_cart(self, c: Customer) -> None:
        self._leave_checkout(c)
        c.cart_id, c.cart = None, {}
        self._carts.pop(c.customer_id, None)

    def _uuid(self) -> str:
        return cat.random_uuid(self._rng)

    def _hex(self, digits: int = 12) -> str:
        return f"{self._rng.getrandbits(4 * digits):0{digits}x}"

    def _product(self, p: cat.CatalogueProduct, qty: int, c: Customer | None, native: bool = False) -> dict[str, Any]:
        price: str | float = _money(p.price) if native else float(p.price)
        props: dict[str, Any] = {"product_id": p.product_id, "sku": p.sku, "name": p.name}
        props |= {"category": p.category, "price": price, "quantity": qty}
        return props | ({"currency": c.currency} if c else {})

    def _products(self, c: Customer) -> dict[str, Any]:
        products = [self._product(_BY_ID[pid], qty, None) for pid, qty in c.cart.items()]
        return {"currency": c.currency, "products": products}

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
