"""Tiny builders of valid events for the unit tests; every time is relative to one fixed instant."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import Event, validate_event

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
_serial = itertools.count(1)


def at(minutes: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes)


def envelope(
    type_: str,
    *,
    minutes: float = 0,
    source: str = "web",
    customer_id: str | None = "c-1",
    **fields: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": f"ev-{next(_serial)}",
        "source": source,
        "type": type_,
        "occurred_at": at(minutes),
        "customer_id": customer_id,
    }
    doc.update(fields)
    return doc


def make(type_: str, **kw: Any) -> Event:
    return validate_event(envelope(type_, **kw))


def identify(traits: dict[str, Any], **kw: Any) -> Event:
    return make("identify", traits=traits, **kw)


def viewed(product_id: str, price: str, **kw: Any) -> Event:
    return make("Product Viewed", properties={"product_id": product_id, "price": price}, **kw)


def added(product_id: str, price: str, quantity: int = 1, **kw: Any) -> Event:
    props = {"product_id": product_id, "price": price, "quantity": quantity, "name": f"name of {product_id}"}
    return make("Product Added", properties=props, **kw)


def removed(product_id: str, price: str, quantity: int = 1, **kw: Any) -> Event:
    props = {"product_id": product_id, "price": price, "quantity": quantity}
    return make("Product Removed", properties=props, **kw)


def order(order_id: str, total: str | None = None, currency: str = "USD", **kw: Any) -> Event:
    props: dict[str, Any] = {"order_id": order_id, "currency": currency}
    if total is not None:
        props["total"] = total
    props.update(kw.pop("extra", {}))
    return make("Order Completed", properties=props, **kw)


def pos_sale(store_id: str, receipt_id: str, total: str, currency: str = "USD", **kw: Any) -> Event:
    props = {"store_id": store_id, "till_id": "till-1", "receipt_id": receipt_id, "total": total, "currency": currency}
    return make("pos.sale", source="pos", properties=props, **kw)


def payment_failed(
    reason_code: str, amount: str = "10.00", order_id: str | None = None, payment_id: str | None = None, **kw: Any
) -> Event:
    props = {"payment_id": payment_id or f"pay-{next(_serial)}", "amount": amount, "reason_code": reason_code}
    if order_id:
        props["order_id"] = order_id
    return make("payment.failed", source="payment", properties=props, **kw)


def consent(channel: str, granted: bool = True, purpose: str = "marketing", **kw: Any) -> Event:
    props = {"channel": channel, "purpose": purpose}
    return make("consent.granted" if granted else "consent.withdrawn", source="crm", properties=props, **kw)


def mention(
    message_id: str,
    *,
    complaint: bool = False,
    sentiment: float | None = None,
    platform: str = "twitter",
    handle: str = "@ann",
    text: str = "where is my parcel?",
    **kw: Any,
) -> Event:
    props = {
        "message_id": message_id,
        "platform": platform,
        "handle": handle,
        "text": text,
        "sentiment": sentiment,
        "complaint": complaint,
    }
    return make("social.mention", source="social", properties=props, **kw)


def reply(message_id: str, **kw: Any) -> Event:
    return make(
        "support.complaint_responded", source="support", properties={"message_id": message_id, "agent": "bob"}, **kw
    )
