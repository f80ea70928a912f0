"""Events driven end to end through ingest, profile, segmenter and notifier on the real embedded stack."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from crmhub.core.topics import DEADLETTER
from crmhub.hub import Hub
from tests.integration.helpers import (
    ABANDONMENT_DELAY_S,
    complaint_mention,
    now_iso,
    profile_by,
    publish,
    read_topic,
    segment_track,
    uid,
    wait_for,
)

pytestmark = pytest.mark.integration


def product(pid: str, price: str, qty: int = 1, category: str = "electronics") -> dict[str, Any]:
    return {
        "product_id": pid,
        "sku": f"SKU-{pid}",
        "name": f"Product {pid}",
        "category": category,
        "price": price,
        "quantity": qty,
    }


def alerts_for(api: httpx.Client, profile_id: str, kind: str) -> list[dict[str, Any]]:
    return [
        a for a in api.get("/v1/alerts", params={"limit": 200, "kind": kind}).json() if a["profile_id"] == profile_id
    ]


def test_profile_folds_orders_exactly_across_channels_and_identifiers(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    anon, user, email = uid("anon-"), uid("user-"), f"{uid('x')}@Example.COM "
    journey = [
        segment_track("Product Viewed", product("p1", "210.05"), anon),
        {
            "type": "identify",
            "messageId": uid("m-"),
            "anonymousId": anon,
            "userId": user,
            "timestamp": now_iso(),
            "traits": {"email": email, "name": "Ada Lovelace", "age": 36, "city": "Berlin"},
        },
        segment_track("Product Added", product("p1", "210.05", 2), anon, user),
    ]
    order = segment_track(
        "Order Completed",
        {"order_id": uid("o-"), "total": "420.10", "currency": "EUR", "products": [product("p1", "210.05", 2)]},
        anon,
        user,
    )
    publish(producer, "web", *journey, order, order)  # the order twice: a duplicate by messageId
    publish(
        producer,
        "pos",
        {
            "event_id": uid("pos-"),
            "source": "pos",
            "type": "pos.sale",
            "occurred_at": now_iso(),
            "customer_id": user,
            "loyalty_id": uid("L"),
            "properties": {
                "store_id": "berlin-1",
                "till_id": "t2",
                "receipt_id": uid("r"),
                "total": "99.95",
                "currency": "EUR",
                "line_items": [product("p9", "99.95", category="home")],
            },
        },
    )

    profile = wait_for(
        lambda: (p := profile_by(api, user_id=user)) and p["order_count"] == 2 and p, what="both orders on the profile"
    )
    assert Decimal(profile["total_spent"]) == Decimal("520.05")
    assert (profile["web_orders"], profile["pos_orders"]) == (1, 1)
    assert profile["traits"] == {"name": "Ada Lovelace", "age": 36, "city": "Berlin"}
    assert profile["identifiers"]["email"] == [email.strip().lower()]
    assert profile["cart"]["items"] == []  # the order emptied the cart
    assert profile["first_order_at"] is not None and profile["last_order_at"] >= profile["first_order_at"]
    # every identifier finds the same profile
    for query in ({"email": email.strip()}, {"anonymous_id": anon}, {"user_id": user}):
        assert profile_by(api, **query)["profile_id"] == profile["profile_id"]  # type: ignore[index]
    assert api.get(f"/v1/profiles/{profile['profile_id']}").json()["order_count"] == 2


def test_segments_follow_profile_changes(hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    user = uid("vip-")
    for total in ("300.00", "250.00"):
        publish(
            producer, "web", segment_track("Order Completed", {"order_id": uid("o-"), "total": total}, uid("a-"), user)
        )
    profile = wait_for(
        lambda: (p := profile_by(api, user_id=user)) and p["order_count"] == 2 and p, what="two orders folded"
    )
    pid = profile["profile_id"]

    def members(name: str) -> list[str]:
        out, cursor = [], 0
        while True:
            page = api.get(f"/v1/segments/{name}/members", params={"cursor": cursor, "limit": 1000}).json()
            out += page["members"]
            cursor = page["next_cursor"]
            if cursor == 0:
                return out

    wait_for(
        lambda: pid in members("big_spenders") and pid in members("repeat_buyers"),
        what="profile in big_spenders and repeat_buyers",
    )
    assert pid not in members("unhappy_customers")
    sizes = {s["name"]: s["size"] for s in api.get("/v1/segments").json()}
    assert sizes["big_spenders"] >= 1 and sizes["repeat_buyers"] >= 1
    assert api.get("/v1/segments/no_such_segment/members").status_code == 404


def test_abandoned_cart_raises_exactly_one_alert_and_bought_cart_none(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    abandoner, buyer = uid("ab-"), uid("buy-")
    publish(
        producer,
        "web",
        segment_track("Product Added", product("p7", "59.90", 2), uid("a-"), abandoner),
        segment_track("Product Added", product("p8", "15.00"), uid("a-"), buyer),
    )
    by = wait_for(lambda: profile_by(api, user_id=buyer), what="buyer profile")
    publish(
        producer, "web", segment_track("Order Completed", {"order_id": uid("o-"), "total": "15.00"}, uid("a-"), buyer)
    )
    ab = wait_for(lambda: profile_by(api, user_id=abandoner), what="abandoner profile")
    assert wait_for(lambda: (p := profile_by(api, user_id=buyer)) and p["order_count"] == 1, what="buyer's order")
    alerts = wait_for(
        lambda: alerts_for(api, ab["profile_id"], "cart_abandoned"),
        ABANDONMENT_DELAY_S + 20,
        what="the abandonment alert",
    )
    time.sleep(3)  # several more timer ticks: still one alert, and none for the buyer
    alerts = alerts_for(api, ab["profile_id"], "cart_abandoned")
    assert len(alerts) == 1
    assert alerts[0]["details"]["item_count"] == 2 and Decimal(alerts[0]["details"]["value"]) == Decimal("119.80")
    assert "open_carts" in alerts[0]["details"]["segments"]  # what the real segmenter put the customer in
    assert alerts_for(api, by["profile_id"], "cart_abandoned") == []
    on_topic = read_topic(hub, "crm.alerts.v1", lambda a: a["profile_id"] == ab["profile_id"], want=2, timeout_s=5)
    assert len(on_topic) == 1


def test_social_complaint_alerts_support_at_once(hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    email, mention = f"{uid('c')}@example.com", uid("mention-")
    complaint = complaint_mention(email, mention)
    publish(producer, "social", complaint, {**complaint, "event_id": uid("s-")})  # re-sent by the listener
    profile = wait_for(lambda: profile_by(api, email=email), what="complainer profile")
    alerts = wait_for(lambda: alerts_for(api, profile["profile_id"], "complaint"), 15, what="complaint alert")
    assert alerts[0]["details"]["message_id"] == mention
    assert "never arrived" in alerts[0]["summary"]
    profile = wait_for(lambda: (p := profile_by(api, email=email)) and p["version"] == 2 and p, what="both folded")
    assert [c["message_id"] for c in profile["open_complaints"]] == [mention] and profile["complaints_total"] == 1
    assert len(alerts_for(api, profile["profile_id"], "complaint")) == 1
    publish(
        producer,
        "support",
        {
            "event_id": uid("r-"),
            "source": "support",
            "type": "support.complaint_responded",
            "occurred_at": now_iso(),
            "email": email,
            "properties": {"message_id": mention, "agent": "sam"},
        },
    )
    wait_for(lambda: (p := profile_by(api, email=email)) and p["open_complaints"] == [], what="complaint answered")


def test_bad_input_becomes_dead_letters_and_the_stream_goes_on(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    marker = uid("bad-")
    good_user = uid("after-bad-")
    publish(
        producer,
        "pos",
        b'{"event_id": "' + marker.encode() + b'", "type": ',  # invalid JSON
        {
            "event_id": marker + "-type",
            "source": "pos",
            "type": "pos.sale",
            "occurred_at": now_iso(),
            "customer_id": marker,
            "properties": {"store_id": "s", "till_id": "t", "receipt_id": "r", "total": "lots"},
        },  # wrong type
        {
            "event_id": marker + "-missing",
            "source": "pos",
            "type": "pos.sale",
            "occurred_at": now_iso(),
            "customer_id": marker,
            "properties": {"store_id": "s", "till_id": "t", "total": "1.00"},
        },  # no receipt
        {
            "event_id": marker + "-good",
            "source": "pos",
            "type": "pos.sale",
            "occurred_at": now_iso(),
            "customer_id": good_user,
            "properties": {"store_id": "s", "till_id": "t", "receipt_id": "r1", "total": "12.00"},
        },
    )
    letters = read_topic(hub, DEADLETTER, lambda d: marker in d["original"], want=3)
    by_location = {d["location"]: d for d in letters}
    assert set(by_location) == {"body", "properties.total", "properties.receipt_id"}, letters
    assert by_location["body"]["reason"].startswith("invalid JSON")
    assert "decimal" in by_location["properties.total"]["reason"].lower()
    assert by_location["properties.receipt_id"]["reason"] == "Field required"
    assert all(d["topic"] == "crm.raw.pos.v1" and d["offset"] is not None for d in letters)
    profile = wait_for(lambda: profile_by(api, user_id=good_user), what="the good event after the bad ones")
    assert profile["pos_orders"] == 1 and Decimal(profile["total_spent"]) == Decimal("12.00")


def test_read_endpoints_need_the_token(hub: Hub) -> None:
    base = f"http://127.0.0.1:{hub.settings.api_port}"
    assert httpx.get(f"{base}/v1/segments").status_code == 401
    assert httpx.get(f"{base}/v1/alerts", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{base}/health").status_code == 200
