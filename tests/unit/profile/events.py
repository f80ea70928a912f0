"""Builders of the events the profile tests need beyond ``tests.unit.factories``."""

from __future__ import annotations

from typing import Any

from schemas.events import Event
from tests.unit import factories as f


def products(*lines: tuple[str, str, str, int]) -> list[dict[str, Any]]:
    """(product_id, category, price, quantity) lines."""
    return [{"product_id": p, "category": c, "price": price, "quantity": q} for p, c, price, q in lines]


def order(
    order_id: str, total: str, currency: str = "USD", lines: list[dict[str, Any]] | None = None, **kw: Any
) -> Event:
    return f.order(order_id, total, currency, extra={"products": lines or []}, **kw)


def refund(order_id: str, total: str | None = None, currency: str = "USD", **kw: Any) -> Event:
    props: dict[str, Any] = {"order_id": order_id, "currency": currency}
    if total is not None:
        props["total"] = total
    props.update(kw.pop("extra", {}))
    return f.make("Order Refunded", properties=props, **kw)


def cancel(order_id: str, total: str | None = None, currency: str = "USD", **kw: Any) -> Event:
    props: dict[str, Any] = {"order_id": order_id, "currency": currency}
    if total is not None:
        props["total"] = total
    props.update(kw.pop("extra", {}))
    return f.make("Order Cancelled", properties=props, **kw)


def sale(
    store_id: str, receipt_id: str, total: str, currency: str = "USD", tenders: list[tuple[str, str]] | None = None,
    lines: list[dict[str, Any]] | None = None, **kw: Any,
) -> Event:  # fmt: skip
    props: dict[str, Any] = {"store_id": store_id, "till_id": "t-1", "receipt_id": receipt_id, "total": total}
    props |= {"currency": currency, "tenders": [{"method": m, "amount": a} for m, a in tenders or []]}
    props["line_items"] = lines or []
    return f.make("pos.sale", source="pos", properties=props, **kw)


def store_return(
    store_id: str, return_id: str, total: str, receipt_id: str | None = None, currency: str = "USD", **kw: Any
) -> Event:
    props: dict[str, Any] = {"store_id": store_id, "till_id": "t-1", "return_id": return_id, "total": total}
    props |= {"currency": currency, "line_items": kw.pop("lines", [])}
    if receipt_id:
        props["original_receipt_id"] = receipt_id
    return f.make("pos.return", source="pos", properties=props, **kw)


def payment(type_: str, payment_id: str, amount: str = "10.00", method: str = "card", **kw: Any) -> Event:
    props: dict[str, Any] = {"payment_id": payment_id, "amount": amount, "method": method}
    props |= kw.pop("extra", {})
    return f.make(type_, source="payment", properties=props, **kw)


def consent(granted: bool, channel: str = "email", purpose: str = "marketing", **kw: Any) -> Event:
    props = {"channel": channel, "purpose": purpose, "method": kw.pop("method", "form")}
    return f.make("consent.granted" if granted else "consent.withdrawn", properties=props, **kw)


def closed(message_id: str, **kw: Any) -> Event:
    return f.make("support.case_closed", source="support", properties={"case_id": "c", "message_id": message_id}, **kw)


def invoice(invoice_id: str, amount: str, due_in_days: float | None = 30, currency: str = "EUR", **kw: Any) -> Event:
    """``payment.invoice_issued``, due ``due_in_days`` after the event's time (None: no due date)."""
    props: dict[str, Any] = {"invoice_id": invoice_id, "order_id": f"o-{invoice_id}", "amount": amount}
    props["currency"] = currency
    if due_in_days is not None:
        props["due_at"] = f.at(kw.get("minutes", 0) + due_in_days * 24 * 60)
    return f.make("payment.invoice_issued", source="payment", properties=props, **kw)


def invoice_paid(invoice_id: str, amount: str, currency: str = "EUR", **kw: Any) -> Event:
    props = {"invoice_id": invoice_id, "amount": amount, "currency": currency, "method": "sepa_credit_transfer"}
    return f.make("payment.invoice_paid", source="payment", properties=props, **kw)


def engagement(type_: str, campaign_id: str | None = "spring", **kw: Any) -> Event:
    """One of Segment's e-mail or push lifecycle events (``Email Opened``, ``Push Notification Tapped`` …)."""
    props = {"campaign_id": campaign_id} if campaign_id else {}
    return f.make(type_, properties=props, **kw)


def membership(kind: str, plan: str = "standard", expires_in_days: float | None = 365, **kw: Any) -> Event:
    """``membership.<kind>``: a term (started, renewed) of ``plan`` for 60.00 EUR ending ``expires_in_days``
    after the event, or its end (lapsed, cancelled)."""
    props: dict[str, Any] = {"membership_id": "M-1"}
    if kind in ("started", "renewed"):
        props |= {"plan": plan, "fee": "60.004", "currency": "EUR"}
        if expires_in_days is not None:
            props["expires_at"] = f.at(kw.get("minutes", 0) + expires_in_days * 24 * 60)
    return f.make(f"membership.{kind}", properties=props, **kw)


def association_event(kind: str, event_id: str, starts_in_days: float | None = 30, **kw: Any) -> Event:
    """``association_event.<kind>`` of ``event_id``, starting ``starts_in_days`` after T0 (None: not said)."""
    props: dict[str, Any] = {"event_id": event_id, "event_name": f"name of {event_id}"}
    if starts_in_days is not None:
        props["starts_at"] = f.at(starts_in_days * 24 * 60)
    return f.make(f"association_event.{kind}", properties=props, **kw)


def case_opened(case_id: str, channel: str = "phone", **kw: Any) -> Event:
    props = {"case_id": case_id, "channel": channel, "category": "repair", "subject": "kettle broken"}
    props |= kw.pop("extra", {})
    return f.make("support.case_opened", source="support", properties=props, **kw)


def note(case_id: str, note_id: str, reply: bool = True, **kw: Any) -> Event:
    props = {"case_id": case_id, "note_id": note_id, "agent": "anna.k", "reply": reply, "text": "we are on it"}
    return f.make("support.note_added", source="support", properties=props, **kw)


def case_closed(case_id: str, **kw: Any) -> Event:
    props = {"case_id": case_id, "agent": "anna.k", "resolution": "replaced"} | kw.pop("extra", {})
    return f.make("support.case_closed", source="support", properties=props, **kw)


def survey(response_id: str, nps: int | None = None, csat: int | None = None, **kw: Any) -> Event:
    props = {"response_id": response_id, "nps": nps, "csat": csat} | kw.pop("extra", {})
    return f.make("survey.answered", source="support", properties=props, **kw)


def review(review_id: str, rating: int, product_id: str = "kettle", **kw: Any) -> Event:
    props = {"review_id": review_id, "rating": rating, "product_id": product_id, "review_body": "meh"}
    return f.make("Product Reviewed", properties=props, **kw)
