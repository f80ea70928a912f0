"""The event contract through the real stack: every event type is forwarded, older schema versions are
upcast on the way, a future version is a dead letter, and money arrives in its currency's minor units."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from crmhub.core.topics import DEADLETTER
from crmhub.hub import Hub
from tests.integration.helpers import now_iso, profile_by, publish, read_topic, uid, wait_for, wait_forwarded

pytestmark = pytest.mark.integration
Doc = dict[str, Any]


def native(source: str, kind: str, props: Doc, **envelope: Any) -> Doc:
    ids = envelope or {"customer_id": uid("c-")}
    return {"event_id": uid("e-"), "source": source, "type": kind, "occurred_at": now_iso(), **ids, "properties": props}


NEW_TYPES: list[tuple[str, str, Doc]] = [
    ("web", "Cart Viewed", {"cart_id": "k", "products": [{"product_id": "p", "price": 2}]}),
    ("web", "Payment Info Entered", {"checkout_id": "k", "payment_method": "paypal"}),
    ("web", "Order Refunded", {"order_id": "o", "total": "5.00"}),
    ("web", "Order Cancelled", {"order_id": "o", "reason": "late"}),
    ("pos", "pos.return", {"store_id": "s", "till_id": "t", "return_id": "x", "total": "3"}),
    ("payment", "payment.authorised", {"payment_id": "y", "amount": "9.5", "currency": "EUR"}),
    ("payment", "payment.captured", {"payment_id": "y", "amount": "9.5", "currency": "EUR"}),
    ("payment", "payment.refunded", {"payment_id": "y", "amount": "9.5"}),
    ("payment", "payment.chargeback", {"payment_id": "y", "amount": "9.5", "reason_code": "fraud"}),
    ("payment", "payment.invoice_issued", {"invoice_id": "i", "amount": "100", "due_at": "2030-01-01T00:00:00Z"}),
    ("payment", "payment.invoice_paid", {"invoice_id": "i", "amount": "100"}),
    ("social", "social.comment", {"message_id": "m", "platform": "instagram", "handle": "@a", "text": "meh"}),
    ("social", "social.direct_message", {"message_id": "n", "platform": "other", "handle": "@a", "text": "hi"}),
    ("support", "support.case_closed", {"case_id": "c", "message_id": "m"}),
    ("web", "consent.granted", {"channel": "email"}),
    ("web", "consent.withdrawn", {"channel": "sms"}),
]


def test_every_new_event_type_is_validated_and_forwarded(hub: Hub, producer: KafkaProducer) -> None:
    events = [native(source, kind, props) for source, kind, props in NEW_TYPES]
    for event in events:
        publish(producer, event["source"], event)
    out = wait_forwarded(hub, {e["event_id"] for e in events}, what="one event of each new type")
    assert sorted(e["type"] for e in out.values()) == sorted(kind for _, kind, _ in NEW_TYPES)
    assert all(e["schema_version"] == 2 and e["profile_id"] for e in out.values())
    authorised = next(e for e in out.values() if e["type"] == "payment.authorised")
    assert authorised["properties"]["amount"] == "9.50"  # EUR has two decimals


def test_version_1_events_are_upcast_and_a_future_version_is_a_dead_letter(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    email = f"{uid('v1-')}@example.com"
    sale = native(
        "pos",
        "pos.sale",
        {
            "store_id": "s",
            "till_id": "t",
            "receipt_id": uid("r-"),
            "total": "1200.4",
            "currency": "JPY",
            "items": [{"product_id": "p", "price": 1200, "quantity": 1}],
            "tender": "cash",
        },
        email=email,
        schema_version=1,
    )
    mention = {"mention_id": uid("m-"), "platform": "twitter", "handle": "@v1", "text": "broken", "complaint": True}
    complaint = native("social", "social.mention", mention, email=email, schema_version=1)
    reply = native("support", "support.replied", {"mention_id": mention["mention_id"], "agent": "sam"}, email=email)
    reply["schema_version"] = 1
    future = native("pos", "pos.sale", sale["properties"], email=email, schema_version=3)
    publish(producer, "pos", sale, future)
    publish(producer, "social", complaint)
    out = wait_forwarded(hub, {sale["event_id"], complaint["event_id"]}, what="v1 events upcast")
    publish(producer, "support", reply)  # after the complaint, so the reply answers it
    out |= wait_forwarded(hub, {reply["event_id"]}, what="v1 reply upcast")

    props = out[sale["event_id"]]["properties"]
    assert out[sale["event_id"]]["schema_version"] == 2
    assert props["total"] == "1200" and props["tenders"] == [{"method": "cash", "amount": "1200", "currency": "JPY"}]
    assert [i["product_id"] for i in props["line_items"]] == ["p"]
    assert out[complaint["event_id"]]["properties"]["message_id"] == mention["mention_id"]
    assert out[reply["event_id"]]["type"] == "support.complaint_responded"

    profile = wait_for(
        lambda: (p := profile_by(api, email=email)) and p["complaints_total"] == 1 and not p["open_complaints"] and p,
        what="the v1 complaint folded and answered",
    )
    assert profile["pos_orders"] == 1 and Decimal(profile["total_spent"]) == Decimal(1200)
    letters = read_topic(hub, DEADLETTER, lambda d: future["event_id"] in d["original"], want=1)
    assert letters and letters[0]["location"] == "schema_version"
    assert letters[0]["reason"] == "unsupported schema_version 3 (this hub reads up to 2)"
