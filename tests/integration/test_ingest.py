"""ingest on the real embedded stack: dedup, late events, clock skew, normalisation, dead letters, OpenAPI.

Inputs go in through the HTTP collector (Segment tracking API) or straight onto a raw topic; what ingest
forwards is read back from ``crm.events.v1`` (records are JSON arrays of events) and ``crm.deadletter.v1``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from crmhub.core.topics import DEADLETTER, raw_topic
from crmhub.hub import Hub
from tests.integration.helpers import (
    forwarded,
    now_iso,
    profile_by,
    publish,
    read_topic,
    uid,
    wait_for,
    wait_forwarded,
)

pytestmark = pytest.mark.integration
WEB_KEY = "test-web-key"
Doc = dict[str, Any]


# ---- reading what ingest wrote ----------------------------------------------------------------------


def raw_record(hub: Hub, topic: str, partition: int, offset: int) -> ConsumerRecord:
    consumer = KafkaConsumer(bootstrap_servers=hub.settings.bootstrap_servers, enable_auto_commit=False)
    tp = TopicPartition(topic, partition)
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        records = wait_for(lambda: consumer.poll(timeout_ms=200).get(tp), 15, what=f"{topic}[{partition}]@{offset}")
        return records[0]
    finally:
        consumer.close()


def at(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), f"{value} is not in UTC"
    return parsed


# ---- sending ----------------------------------------------------------------------------------------


def collect(hub: Hub, path: str, body: Doc) -> str:
    """POST a Segment call to the collector with the web write key; it must be accepted. The request id."""
    response = httpx.post(f"http://127.0.0.1:{hub.settings.api_port}{path}", json=body, auth=(WEB_KEY, ""))
    assert response.status_code == 200 and response.json() == {"success": True}, response.text
    return response.headers["X-Request-Id"]


def track(event: str, props: Doc, anon: str, user: str | None = None, when: datetime | None = None) -> Doc:
    msg: Doc = {
        "type": "track",
        "event": event,
        "messageId": uid("m-"),
        "anonymousId": anon,
        "timestamp": (when or datetime.now(UTC)).isoformat(),
        "properties": props,
    }
    if user:
        msg["userId"] = user
    return msg


def duplicates_counted(api: httpx.Client) -> int:
    counts: dict[str, int] = api.get("/v1/stats").raise_for_status().json()["counts"]
    return counts.get("ingest.duplicates", 0)


# ---- tests ------------------------------------------------------------------------------------------


def test_a_resent_event_id_is_forwarded_once_and_counted_as_a_duplicate(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    before = duplicates_counted(api)
    added = track("Product Added", {"product_id": "p-dup", "price": "5.00"}, uid("dup-anon-"))
    # an SDK retrying: the same message again, with a later sentAt, then once more inside a batch
    collect(hub, "/v1/track", {**added, "sentAt": now_iso()})
    collect(hub, "/v1/track", {**added, "sentAt": now_iso()})
    collect(hub, "/v1/batch", {"batch": [added], "sentAt": now_iso()})
    sale: Doc = {
        "event_id": uid("dup-e-"),
        "source": "pos",
        "type": "pos.sale",
        "occurred_at": now_iso(),
        "customer_id": uid("dup-till-"),
        "properties": {"store_id": "s1", "till_id": "t1", "receipt_id": uid("r"), "total": "3.00"},
    }
    publish(producer, "pos", sale, sale)  # a native event delivered twice
    sent_twice = 3

    # ingest counts a batch's duplicates after its events are on crm.events.v1: once all three are
    # counted, every first copy has been forwarded, and the topic can be read to its end
    wait_for(lambda: duplicates_counted(api) - before >= sent_twice, what="three duplicates counted")
    ids = {added["messageId"], sale["event_id"]}
    events = forwarded(hub, lambda e: e["event_id"] in ids)
    assert sorted(e["event_id"] for e in events) == sorted(ids)
    assert duplicates_counted(api) - before == sent_twice  # tests run one at a time: nothing else dedups now


def test_late_older_cart_add_does_not_refill_the_cart_the_newer_order_emptied(hub: Hub, api: httpx.Client) -> None:
    anon, user = uid("late-anon-"), uid("late-user-")
    ordered_at = datetime.now(UTC) - timedelta(minutes=1)
    line = {"product_id": "p-late", "price": "30.00", "quantity": 1}
    order = track(
        "Order Completed", {"order_id": uid("o-"), "total": "30.00", "products": [line]}, anon, user, ordered_at
    )
    collect(hub, "/v1/track", {**order, "sentAt": now_iso()})
    wait_for(lambda: (p := profile_by(api, user_id=user)) and p["order_count"] == 1, what="the order folded")
    # the cart add that led to the order, 10 minutes older, arrives after it (a slow device, a replay)
    late_add = track("Product Added", line, anon, user, ordered_at - timedelta(minutes=10))
    collect(hub, "/v1/track", {**late_add, "sentAt": now_iso()})
    profile = wait_for(lambda: (p := profile_by(api, user_id=user)) and p["version"] == 2 and p, what="late add")
    assert profile["cart"]["items"] == [] and Decimal(profile["cart"]["value"]) == 0
    cleared_at = profile["cart"]["cleared_at"]
    assert profile["order_count"] == 1 and Decimal(profile["total_spent"]) == Decimal("30.00")

    # a cart add newer than the order does fill the cart
    next_add = track("Product Added", {"product_id": "p-next", "price": "7.50"}, anon, user)
    collect(hub, "/v1/track", {**next_add, "sentAt": now_iso()})
    profile = wait_for(lambda: (p := profile_by(api, user_id=user)) and p["version"] == 3 and p, what="newer add")
    assert [i["product_id"] for i in profile["cart"]["items"]] == ["p-next"]

    # each event was forwarded with its own time (sender clock right: occurred_at is the timestamp)
    sent = {m["messageId"]: at(m["timestamp"]) for m in (order, late_add, next_add)}
    events = wait_forwarded(hub, set(sent), "the three events forwarded")
    for event_id, timestamp in sent.items():
        assert abs(at(events[event_id]["occurred_at"]) - timestamp) < timedelta(seconds=2), events[event_id]
    assert len({e["profile_id"] for e in events.values()}) == 1
    assert at(cleared_at) == at(events[order["messageId"]]["occurred_at"])  # emptied as of the order's time


def test_late_older_identify_does_not_overwrite_newer_traits(hub: Hub, api: httpx.Client) -> None:
    user = uid("traits-user-")
    newer, older = datetime.now(UTC), datetime.now(UTC) - timedelta(seconds=1)

    def identify(city: str, when: datetime) -> Doc:
        return {"messageId": uid("m-"), "userId": user, "timestamp": when.isoformat(), "traits": {"city": city}}

    collect(hub, "/v1/identify", identify("Paris", newer))
    wait_for(lambda: profile_by(api, user_id=user), what="the newer identify folded")
    collect(hub, "/v1/identify", identify("Berlin", older))  # moved from Berlin to Paris; told late
    profile = wait_for(lambda: (p := profile_by(api, user_id=user)) and p["version"] == 2 and p, what="both folded")
    assert profile["traits"]["city"] == "Paris"


def test_clock_skew_is_corrected_from_sent_at_and_zoneless_times_are_utc(hub: Hub) -> None:
    anon = uid("skew-anon-")
    ahead = datetime.now(UTC) + timedelta(hours=2)  # the sender's clock is two hours fast
    skewed = track("Product Added", {"product_id": "p-skew"}, anon, when=ahead - timedelta(seconds=5))
    started = datetime.now(UTC)
    collect(hub, "/v1/track", {**skewed, "sentAt": ahead.isoformat()})
    # SDKs send sentAt once per batch; here both times are also without zone (Segment reads them as UTC)
    naive = track("Product Added", {"product_id": "p-naive"}, anon)
    naive["timestamp"] = (ahead - timedelta(seconds=30)).replace(tzinfo=None).isoformat()
    collect(hub, "/v1/batch", {"batch": [naive], "sentAt": ahead.replace(tzinfo=None).isoformat()})
    finished = datetime.now(UTC)
    # no sentAt at all: the timestamp is taken as it is, a zone-less one as UTC, an offset one converted
    plain = track("Product Added", {"product_id": "p-plain"}, anon)
    plain["timestamp"] = "2024-05-01T12:00:00"
    offset = track("Product Added", {"product_id": "p-offset"}, anon)
    offset["timestamp"] = "2024-05-01T14:00:00+02:00"
    collect(hub, "/v1/batch", {"batch": [plain, offset]})

    events = wait_forwarded(hub, {m["messageId"] for m in (skewed, naive, plain, offset)}, "skewed events")
    for msg, before_send in ((skewed, timedelta(seconds=5)), (naive, timedelta(seconds=30))):
        event = events[msg["messageId"]]
        received = at(event["received_at"])
        assert started - timedelta(seconds=1) <= received <= finished + timedelta(seconds=1), event
        assert at(event["occurred_at"]) == received - before_send, event  # received_at - (sentAt - timestamp)
    expected = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert at(events[plain["messageId"]]["occurred_at"]) == expected
    assert at(events[offset["messageId"]]["occurred_at"]) == expected
    assert events[plain["messageId"]]["received_at"] is not None


def test_emails_and_phones_are_normalised_on_the_forwarded_events(hub: Hub, api: httpx.Client) -> None:
    user, other_device = uid("norm-user-"), uid("norm-anon-")
    identify: Doc = {
        "messageId": uid("m-"),
        "userId": user,
        "timestamp": now_iso(),
        "traits": {"email": "  Jane.Doe@Example.COM ", "phone": "+44 20 7946 0958", "name": "Jane Doe"},
    }
    collect(hub, "/v1/identify", identify)
    profile = wait_for(lambda: profile_by(api, user_id=user), what="the identified profile")
    # the same person, told apart only by a differently written e-mail and phone in the context
    order = track("Order Completed", {"order_id": uid("o-"), "total": "12.00"}, other_device)
    order["context"] = {"traits": {"email": "JANE.DOE@example.com", "phone": "+44 (0)20 7946-0958"}}
    collect(hub, "/v1/track", order)

    events = wait_forwarded(hub, {identify["messageId"], order["messageId"]}, "both events forwarded")
    for event in events.values():
        assert (event["email"], event["phone"]) == ("jane.doe@example.com", "+442079460958"), event
        assert event["profile_id"] == profile["profile_id"]
    assert profile_by(api, phone="+442079460958")["profile_id"] == profile["profile_id"]  # type: ignore[index]
    assert profile_by(api, email="jane.doe@example.com")["profile_id"] == profile["profile_id"]  # type: ignore[index]


def test_docs_serve_swagger_ui_and_openapi_lists_the_collector(hub: Hub) -> None:
    base = f"http://127.0.0.1:{hub.settings.api_port}"
    docs = httpx.get(f"{base}/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in docs.text
    spec = httpx.get(f"{base}/openapi.json").raise_for_status().json()
    for path in ("/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/alias", "/v1/events"):
        assert "post" in spec["paths"].get(path, {}), f"{path} missing from /openapi.json"


def test_page_and_alias_calls_are_forwarded_with_their_type(hub: Hub) -> None:
    anon, user = uid("pa-anon-"), uid("pa-user-")
    page: Doc = {
        "messageId": uid("m-"),
        "anonymousId": anon,
        "timestamp": now_iso(),
        "name": "Home",
        "category": "Shop",
        "properties": {"url": "https://shop.example/", "title": "Welcome"},
    }
    alias: Doc = {"messageId": uid("m-"), "previousId": anon, "userId": user, "timestamp": now_iso()}
    collect(hub, "/v1/page", page)
    collect(hub, "/v1/alias", alias)

    events = wait_forwarded(hub, {page["messageId"], alias["messageId"]}, "page and alias forwarded")
    viewed, aliased = events[page["messageId"]], events[alias["messageId"]]
    assert viewed["type"] == "page" and viewed["anonymous_id"] == anon
    expected = {"url": "https://shop.example/", "title": "Welcome", "name": "Home", "category": "Shop"}
    assert viewed["properties"].items() >= expected.items(), viewed
    assert aliased["type"] == "alias" and (aliased["anonymous_id"], aliased["customer_id"]) == (anon, user)
    assert aliased["profile_id"] == viewed["profile_id"]


def test_orders_missing_or_mistyping_a_field_become_dead_letters_naming_it(hub: Hub, api: httpx.Client) -> None:
    marker = uid("dl-")
    no_id = track("Order Completed", {"total": "10.00", "note": marker}, uid("dl-anon-"))
    not_money = track("Order Completed", {"order_id": uid("o-"), "total": "lots", "note": marker}, uid("dl-anon-"))
    request_id = collect(hub, "/v1/batch", {"batch": [no_id, not_money]})  # accepted: ingest validates

    letters = read_topic(hub, DEADLETTER, lambda d: marker in d["original"], want=2)
    by_location = {d["location"]: d for d in letters}
    assert set(by_location) == {"properties.order_id", "properties.total"}, letters
    assert by_location["properties.order_id"]["reason"] == "Field required"
    assert "decimal" in by_location["properties.total"]["reason"].lower()
    for location, msg in (("properties.order_id", no_id), ("properties.total", not_money)):
        letter = by_location[location]
        assert orjson.loads(letter["original"]) == msg
        assert (letter["source"], letter["topic"]) == ("web", raw_topic("web"))
        # topic[partition]@offset is where the collector wrote the message, with its request id
        raw = raw_record(hub, letter["topic"], letter["partition"], letter["offset"])
        assert orjson.loads(raw.value) == msg
        assert letter["request_id"] == request_id == dict(raw.headers)["request_id"].decode()
    assert forwarded(hub, lambda e: e["event_id"] in {no_id["messageId"], not_money["messageId"]}) == []
    recent = api.get("/v1/stats").json()["recent_deadletters"]
    assert sum(marker in d["original"] for d in recent) == 2
