"""The HTTP collector speaks the Segment tracking API: the real Segment SDK sends to it unchanged."""

from __future__ import annotations

import base64
import gzip
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from crmhub.core.topics import DEADLETTER
from crmhub.hub import Hub
from tests.integration.helpers import now_iso, profile_by, read_topic, uid, wait_for

pytestmark = pytest.mark.integration
WRITE_KEY = "test-web-key"


@pytest.mark.parametrize(
    ("sdk", "use_gzip"),
    [("segment", False), ("segment", True), ("rudderstack", True)],
    ids=["segment-plain", "segment-gzip", "rudderstack-gzip"],
)
def test_real_sdks_send_to_the_hub_unchanged(hub: Hub, api: httpx.Client, sdk: str, use_gzip: bool) -> None:
    errors: list[Exception] = []
    sdk_client = SegmentClient if sdk == "segment" else RudderClient
    client = sdk_client(
        write_key=WRITE_KEY,
        host=f"http://127.0.0.1:{hub.settings.api_port}",
        gzip=use_gzip,
        on_error=lambda exc, batch: errors.append(exc),
        max_retries=1,
    )
    anon, user = uid("sdk-anon-"), uid("sdk-user-")
    client.page(anonymous_id=anon, name="Home")
    client.identify(user, {"email": f"{user}@example.com", "name": "Grace Hopper", "age": 45}, anonymous_id=anon)
    client.track(user, "Product Added", {"product_id": "sku-1", "price": 25.5, "quantity": 2}, anonymous_id=anon)
    client.track(
        user,
        "Order Completed",
        {
            "order_id": uid("o-"),
            "revenue": 51.0,
            "currency": "USD",
            "products": [{"product_id": "sku-1", "price": 25.5, "quantity": 2}],
        },
        anonymous_id=anon,
    )
    client.flush()
    profile = wait_for(
        lambda: (p := profile_by(api, user_id=user)) and p["order_count"] == 1 and p,
        what="the SDK's events folded into a profile",
    )
    # later, at sign-up: the same person was seen before on another device. (Sent together with the
    # first events it could be read first from another partition and start a second profile: merging two
    # known profiles is not built yet.)
    other_device = uid("sdk-old-anon-")
    client.alias(other_device, user)
    client.flush()
    client.shutdown()
    assert errors == []
    assert Decimal(profile["total_spent"]) == Decimal("51.0")
    assert profile["traits"]["name"] == "Grace Hopper"
    assert profile_by(api, anonymous_id=anon)["profile_id"] == profile["profile_id"]  # type: ignore[index]
    linked = wait_for(lambda: profile_by(api, anonymous_id=other_device), what="the aliased id linked")
    assert linked["profile_id"] == profile["profile_id"]
    assert profile_by(api, email=f"{user}@example.com")["profile_id"] == profile["profile_id"]  # type: ignore[index]


def test_collector_rejects_bad_requests_clearly(hub: Hub) -> None:
    base = f"http://127.0.0.1:{hub.settings.api_port}"
    msg = {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": uid("a-"),
        "messageId": uid("m-"),
        "properties": {"product_id": "p", "price": 1},
    }
    wrong = httpx.post(f"{base}/v1/batch", json={"batch": [msg]}, auth=("not-a-key", ""))
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    assert httpx.post(f"{base}/v1/track", json=msg).status_code == 401  # no key at all
    # the write key may also come in the body, as Segment allows
    assert httpx.post(f"{base}/v1/track", json={**msg, "writeKey": WRITE_KEY}).status_code == 200

    big = {**msg, "properties": {"product_id": "p", "price": 1, "blob": "x" * 33_000}}
    too_big = httpx.post(f"{base}/v1/batch", json={"batch": [msg, big]}, auth=(WRITE_KEY, ""))
    assert too_big.status_code == 400 and "batch[1] exceeds 32 KB" in too_big.json()["message"]
    huge = httpx.post(f"{base}/v1/batch", content=b"[" + b" " * 600_000 + b"]", auth=(WRITE_KEY, ""))
    assert huge.status_code == 400 and huge.json()["code"] == "payload_too_large"

    marker = uid("broken-")
    broken = httpx.post(f"{base}/v1/batch", content=b'{"batch": [' + marker.encode(), auth=(WRITE_KEY, ""))
    assert broken.status_code == 400 and broken.json()["code"] == "invalid_json"
    letters = read_topic(hub, DEADLETTER, lambda d: marker in d["original"], want=1)
    assert letters and letters[0]["source"] == "http" and letters[0]["request_id"]

    zipped = gzip.compress(orjson.dumps({"batch": [msg]}))
    ok = httpx.post(
        f"{base}/v1/batch",
        content=zipped,
        auth=(WRITE_KEY, ""),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert ok.status_code == 200 and ok.json() == {"success": True}
    basic = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert (
        httpx.post(
            f"{base}/v1/identify", json={"userId": uid("u-"), "traits": {}}, headers={"Authorization": f"Basic {basic}"}
        ).status_code
        == 200
    )


def test_native_events_endpoint_takes_crmhub_envelopes(hub: Hub, api: httpx.Client) -> None:
    base = f"http://127.0.0.1:{hub.settings.api_port}"
    customer = uid("till-")

    def sale(receipt: str, total: str) -> dict[str, Any]:
        return {
            "event_id": uid("e-"),
            "source": "pos",
            "type": "pos.sale",
            "occurred_at": now_iso(),
            "customer_id": customer,
            "properties": {"store_id": "s1", "till_id": "t1", "receipt_id": receipt, "total": total},
        }

    many = httpx.post(
        f"{base}/v1/events", json={"events": [sale("r1", "10.00"), sale("r2", "5.50")]}, auth=("test-pos-key", "")
    )
    one = httpx.post(f"{base}/v1/events", json=sale("r3", "1.25"), auth=("test-pos-key", ""))
    assert (many.status_code, one.status_code) == (200, 200)
    profile = wait_for(
        lambda: (p := profile_by(api, user_id=customer)) and p["pos_orders"] == 3 and p, what="three sales folded"
    )
    assert Decimal(profile["total_spent"]) == Decimal("16.75")
    # a web key cannot post store events: ingest keeps them as dead letters, with the reason
    marker = uid("wrong-source-")
    stray = {**sale("r4", "1.00"), "event_id": marker}
    assert httpx.post(f"{base}/v1/events", json=stray, auth=(WRITE_KEY, "")).status_code == 200
    letters = read_topic(hub, DEADLETTER, lambda d: marker in d["original"], want=1)
    assert letters and letters[0]["reason"] == "source 'pos' arrived on the web topic"
