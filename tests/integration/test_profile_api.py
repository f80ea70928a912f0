"""The profile API on the real embedded stack: timeline, export and erasure."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import redis
from kafka import KafkaProducer

from crmhub.core.topics import EVENTS
from crmhub.hub import Hub
from tests.integration.helpers import (
    id_key,
    identity_rebuild,
    now_iso,
    profile_by,
    publish,
    segment_track,
    uid,
    wait_for,
)

pytestmark = pytest.mark.integration


def track(event: str, anon: str, user: str | None = None, **props: Any) -> dict[str, Any]:
    return segment_track(event, props, anon, user)


def timeline(api: httpx.Client, profile_id: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"/v1/profiles/{profile_id}/events", params=params)
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_the_timeline_shows_recent_events_newest_first_and_follows_merges(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    anon, user = uid("anon-"), uid("user-")
    views = [track("Product Viewed", anon, product_id=f"p{i}", price="5.00") for i in range(3)]
    publish(producer, "web", *views)
    anon_profile = wait_for(lambda: profile_by(api, anonymous_id=anon), what="the anonymous profile")
    pid = anon_profile["profile_id"]
    wait_for(lambda: len(timeline(api, pid)) == 3, what="three events on the timeline")
    got = timeline(api, pid)
    assert [e["event_id"] for e in got] == [m["messageId"] for m in reversed(views)]
    assert got[0]["type"] == "Product Viewed" and got[0]["event"]["properties"]["product_id"] == "p2"
    assert [e["event_id"] for e in timeline(api, pid, limit=1, offset=1)] == [views[1]["messageId"]]
    assert [e["event_id"] for e in timeline(api, pid, before=got[0]["occurred_at"])] == [
        m["messageId"] for m in reversed(views[:2])
    ]

    # the customer's own profile, then the identify that merges the anonymous one into it
    other = uid("anon-")
    publish(producer, "web", track("Product Viewed", other, user, product_id="px", price="1.00"))
    survivor = wait_for(lambda: profile_by(api, user_id=user), what="the customer's profile")["profile_id"]
    publish(producer, "web", {**track("Cart Viewed", anon, user), "type": "track"})
    wait_for(lambda: len(timeline(api, survivor)) >= 5, what="the merged timeline")
    merged = {e["event_id"] for e in timeline(api, survivor)}
    assert {m["messageId"] for m in views} <= merged
    assert {e["event_id"] for e in timeline(api, pid)} == merged  # the absorbed id reads the survivor's


def test_the_timeline_needs_a_token_and_a_known_profile(hub: Hub, api: httpx.Client) -> None:
    assert api.get("/v1/profiles/no-such-profile/events").status_code == 404
    assert httpx.get(f"{api.base_url}/v1/profiles/x/events").status_code == 401


def order(anon: str, user: str, total: str) -> dict[str, Any]:
    props = {"order_id": uid("o-"), "total": total, "currency": "EUR", "products": []}
    return track("Order Completed", anon, user, **props)


def test_the_export_holds_everything_about_the_person(hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    anon, user, email = uid("anon-"), uid("user-"), f"{uid('ex-')}@example.com"
    ident = {"type": "identify", "messageId": uid("m-"), "anonymousId": anon, "userId": user, "timestamp": now_iso()}
    publish(producer, "web", {**ident, "traits": {"email": email}}, order(anon, user, "400.00"))
    publish(producer, "web", order(anon, user, "300.00"))
    publish(producer, "web", track("Product Added", anon, user, product_id="p1", price="9.00", quantity=1))
    pid = wait_for(lambda: profile_by(api, user_id=user), what="the profile")["profile_id"]

    def exported() -> dict[str, Any] | None:
        doc: dict[str, Any] = api.get(f"/v1/profiles/{pid}/export").json()
        done = {"big_spenders", "repeat_buyers"} <= set(doc["segments"]) and doc["alerts"]
        return doc if done and len(doc["events"]) == 4 else None

    doc = wait_for(exported, timeout_s=60, what="the export with segments and the abandonment alert")
    assert doc["profile"]["profile_id"] == pid and doc["profile"]["order_count"] == 2
    assert {(i["kind"], i["value"]) for i in doc["identifiers"]} >= {
        ("customer_id", user),
        ("email", email),
        ("anonymous_id", anon),
    }
    assert doc["alerts"][0]["kind"] == "cart_abandoned" and doc["generated_at"]
    assert api.get("/v1/profiles/no-such-profile/export").status_code == 404
    assert httpx.get(f"{api.base_url}/v1/profiles/{pid}/export").status_code == 401


def counts(api: httpx.Client) -> dict[str, int]:
    found: dict[str, int] = api.get("/v1/stats").json()["counts"]
    return found


def suppressed(api: httpx.Client) -> int:
    return int(counts(api).get("ingest.suppressed", 0))


def test_erase_deletes_the_profile_and_suppresses_its_future_events(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    anon, user, email = uid("anon-"), uid("user-"), f"{uid('gone-')}@example.com"
    ident = {"type": "identify", "messageId": uid("m-"), "anonymousId": anon, "userId": user, "timestamp": now_iso()}
    publish(producer, "web", {**ident, "traits": {"email": email}}, order(anon, user, "600.00"))
    pid = wait_for(lambda: (p := profile_by(api, email=email)) and p["order_count"] == 1 and p, what="the profile")[
        "profile_id"
    ]
    wait_for(lambda: "big_spenders" in api.get(f"/v1/profiles/{pid}/export").json()["segments"], what="segment")
    assert httpx.delete(f"{api.base_url}/v1/profiles/{pid}").status_code == 401
    before = suppressed(api)

    assert api.delete(f"/v1/profiles/{pid}").status_code == 204
    assert api.get(f"/v1/profiles/{pid}").status_code == 404
    assert api.get("/v1/profiles", params={"email": email}).status_code == 404
    assert api.get("/v1/profiles", params={"user_id": user}).status_code == 404
    assert api.get(f"/v1/profiles/{pid}/export").status_code == 404
    assert api.get(f"/v1/profiles/{pid}/events").status_code == 404
    assert pid not in api.get("/v1/segments/big_spenders/members", params={"limit": 1000}).json()["members"]
    assert api.delete(f"/v1/profiles/{pid}").status_code == 404

    # new events with its email (and a new anonymous id) produce nothing: ingest suppresses them
    other = uid("anon-")
    publish(producer, "web", {**ident, "messageId": uid("m-"), "anonymousId": other, "userId": None,
                              "traits": {"email": email}})  # fmt: skip
    publish(producer, "web", order(uid("anon-"), user, "5.00"))
    wait_for(lambda: suppressed(api) >= before + 2, what="both events suppressed")
    assert profile_by(api, email=email) is None and profile_by(api, anonymous_id=other) is None

    # an event already past ingest when the profile was erased (stamped with its id) is dropped too
    late = {"event_id": uid("late-"), "type": "Product Viewed", "source": "web", "occurred_at": now_iso(),
            "received_at": now_iso(), "profile_id": pid, "customer_id": user,
            "properties": {"product_id": "p1", "price": "1.00"}}  # fmt: skip
    dropped = counts(api).get("profile.suppressed", 0)
    producer.send(EVENTS, value=orjson.dumps([late]))
    producer.flush()
    wait_for(lambda: counts(api).get("profile.suppressed", 0) > dropped, what="the late event dropped")
    assert api.get(f"/v1/profiles/{pid}").status_code == 404


def test_an_erasure_outlives_a_redis_loss(hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    """The erased identifiers are kept in SQL (the suppression list): after Redis lost ingest's index,
    `crmhub identity rebuild` suppresses them again, so the person does not come back."""
    anon, user, email = uid("anon-"), uid("user-"), f"{uid('erased-')}@example.com"
    ident = {"type": "identify", "messageId": uid("m-"), "anonymousId": anon, "userId": user, "timestamp": now_iso()}
    publish(producer, "web", {**ident, "traits": {"email": email}}, order(anon, user, "20.00"))
    pid = wait_for(lambda: profile_by(api, email=email), what="the profile")["profile_id"]
    assert api.delete(f"/v1/profiles/{pid}").status_code == 204
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    sentinels = [id_key(hub, "email", email), id_key(hub, "customer_id", user)]
    assert r.delete(*sentinels) == 2  # what a Redis without persistence forgets

    assert "2 suppressed" in identity_rebuild(hub)
    assert [r.get(key) for key in sentinels] == [b"!erased", b"!erased"]
    before = suppressed(api)
    publish(producer, "web", order(uid("anon-"), user, "5.00"))
    wait_for(lambda: suppressed(api) > before, what="the event suppressed")
    assert profile_by(api, email=email) is None and profile_by(api, user_id=user) is None


def test_rfm_scores_are_refreshed_against_the_whole_base(hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    """The profile service scores every customer's recency, frequency and monetary value periodically
    (every 2 s in these tests); a customer who bought more, more often, scores at least as high."""
    big, small = uid("rfm-big-"), uid("rfm-small-")
    orders = [(big, uid("o-"), "900.00") for _ in range(4)] + [(small, uid("o-"), "0.01")]
    publish(
        producer,
        "pos",
        *(
            {
                "event_id": uid("e-"),
                "source": "pos",
                "type": "pos.sale",
                "occurred_at": now_iso(),
                "customer_id": customer,
                "properties": {"store_id": "s", "till_id": "t", "receipt_id": receipt, "total": total},
            }
            for customer, receipt, total in orders
        ),
    )

    def scored(customer: str, count: int) -> dict[str, Any] | None:
        p = profile_by(api, user_id=customer)
        return p if p and p["order_count"] == count and p["rfm"] else None

    rich = wait_for(lambda: scored(big, 4), what="the big spender scored")
    poor = wait_for(lambda: scored(small, 1), what="the small spender scored")
    # one order is the least anyone in the base has; the quintile cut points lie between the base's
    # smallest and largest spend, so 3,600 scores above 0.01 whatever the other tests bought
    assert poor["rfm"]["frequency"] == 1 and rich["rfm"]["frequency"] >= 1
    assert rich["rfm"]["monetary"] > poor["rfm"]["monetary"]
    for p in (rich, poor):
        r = p["rfm"]
        assert r["score"] == f"{r['recency']}{r['frequency']}{r['monetary']}" and r["recency"] == 5  # bought today
