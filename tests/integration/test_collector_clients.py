"""What browser and mobile SDKs send, posted as they send it: CORS, the short paths, ``text/plain``
bodies, beacons, the mobile libraries' batches (``/v1/b``: ``screen``, ``context.device``, ``context.app``),
clock-skew correction, the settings the SDKs fetch, and traits over a limit becoming dead letters."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from crmhub.core.topics import DEADLETTER
from crmhub.hub import Hub
from schemas.events import MAX_TRAIT_VALUE_BYTES
from tests.integration.helpers import profile_by, read_topic, uid, wait_for

pytestmark = pytest.mark.integration
WRITE_KEY = "test-web-key"
SHOP = "http://shop.example"
BASIC = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def base(hub: Hub) -> str:
    return f"http://127.0.0.1:{hub.settings.api_port}"


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_a_preflight_is_answered_on_the_collector_and_refused_on_the_read_api(hub: Hub) -> None:
    asks = {"Origin": SHOP, "Access-Control-Request-Method": "POST"}
    asks |= {"Access-Control-Request-Headers": "content-type,authorization,anonymousid"}
    for path in ("/v1/t", "/v1/batch", "/v1/b", "/v1/identify"):
        answer = httpx.options(base(hub) + path, headers=asks)
        assert answer.status_code == 200, path
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "POST" in answer.headers["access-control-allow-methods"]
        assert "anonymousid" in answer.headers["access-control-allow-headers"].lower()
    refused = httpx.options(base(hub) + "/v1/profiles", headers=asks)
    assert refused.status_code == 405 and "access-control-allow-origin" not in refused.headers


def test_short_paths_take_text_plain_bodies_with_the_write_key_inside(hub: Hub, api: httpx.Client) -> None:
    user = uid("short-")
    now = datetime.now(UTC)
    calls = {
        "/v1/i": {"userId": user, "traits": {"email": f"{user}@example.com", "tier": "silver"}},
        "/v1/p": {"userId": user, "name": "Home", "properties": {"url": f"{SHOP}/"}},
        "/v1/t": {"userId": user, "event": "Product Viewed", "properties": {"product_id": "p-9", "price": 5}},
        "/v1/g": {"userId": user, "groupId": "club-1", "traits": {"name": "Running Club"}},
    }
    for path, msg in calls.items():
        body = {**msg, "writeKey": WRITE_KEY, "messageId": uid("m-"), "timestamp": iso(now), "sentAt": iso(now)}
        answer = httpx.post(
            base(hub) + path, content=orjson.dumps(body), headers={"Content-Type": "text/plain", "Origin": SHOP}
        )
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["access-control-allow-origin"] == "*"  # the page may read the answer
    profile = wait_for(
        lambda: (p := profile_by(api, user_id=user)) and p["product_views"] and p["groups"] and p, what="the profile"
    )
    assert profile["traits"]["tier"] == "silver"
    assert profile["groups"]["club-1"]["traits"] == {"name": "Running Club"}


def mobile_batch(user: str, anon: str, device_clock: datetime) -> dict[str, object]:
    """A batch as Segment's Analytics-Swift sends it to ``/v1/b`` (its shape, with fewer context keys)."""
    context = {
        "app": {"name": "Shop", "version": "4.2.0", "build": "420", "namespace": "example.shop"},
        "device": {"type": "ios", "model": "iPhone15,2", "manufacturer": "Apple", "id": uid("dev-")},
        "os": {"name": "iOS", "version": "17.4"},
        "library": {"name": "analytics-swift", "version": "1.5.0"},
        "locale": "de-DE",
        "timezone": "Europe/Berlin",
        "network": {"wifi": True},
        "screen": {"width": 393, "height": 852},
        "location": {"country": "Germany"},
        "ip": "203.0.113.9",
        "campaign": {"source": "push", "medium": "app", "name": "easter"},
    }
    first = device_clock - timedelta(minutes=1)
    calls = [
        {"type": "identify", "traits": {"email": f"{user}@example.com", "app_user": True}},
        {"type": "screen", "name": "Basket", "properties": {"items": 2}},
        {"type": "track", "event": "Product Added", "properties": {"product_id": "p-1", "price": 12, "quantity": 1}},
    ]
    batch = [
        {**c, "userId": user, "anonymousId": anon, "messageId": uid("m-"), "timestamp": iso(first), "context": context}
        for c in calls
    ]
    return {"batch": batch, "sentAt": iso(device_clock)}


def test_a_mobile_batch_keeps_the_device_context_and_corrects_the_device_clock(hub: Hub, api: httpx.Client) -> None:
    user, anon = uid("app-"), uid("app-anon-")
    device_clock = datetime.now(UTC) + timedelta(hours=3)  # the phone's clock runs 3 hours fast
    answer = httpx.post(
        base(hub) + "/v1/b", json=mobile_batch(user, anon, device_clock), headers={"Authorization": BASIC}
    )
    assert answer.status_code == 200, answer.text
    profile = wait_for(
        lambda: (p := profile_by(api, user_id=user)) and p["cart"]["items"] and p, what="the app's profile"
    )
    context = profile["context"]
    assert (context["device_type"], context["locale"], context["timezone"]) == ("ios", "de-DE", "Europe/Berlin")
    assert context["country"] == "Germany" and "203.0.113.9" not in orjson.dumps(profile).decode()
    assert context["last_touch"]["campaign"] == "easter"
    occurred = datetime.fromisoformat(context["updated_at"])
    assert abs(occurred - (datetime.now(UTC) - timedelta(minutes=1))) < timedelta(seconds=30)  # not 3 h ahead
    assert profile["traits"]["app_user"] is True
    exported = api.get(f"/v1/profiles/{profile['profile_id']}/export").json()  # GDPR: all of it, IP none
    assert "203.0.113.9" not in orjson.dumps(exported).decode() and "Europe/Berlin" in orjson.dumps(exported).decode()


def test_the_openapi_document_lists_every_path_of_the_tracking_api(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/v1/t", "/v1/i", "/v1/p", "/v1/s", "/v1/g", "/v1/a", "/v1/b", "/v1/screen", "/v1/group"):
        assert "post" in paths[path], path
    assert {"/beacon/v1/batch", "/v1/projects/{write_key}/settings", "/sourceConfig"} <= set(paths)


def test_a_beacon_posts_text_with_the_write_key_in_the_query(hub: Hub, api: httpx.Client) -> None:
    user = uid("beacon-")
    body = {"batch": [{"type": "track", "event": "Cart Viewed", "userId": user, "messageId": uid("m-")}]}
    answer = httpx.post(
        f"{base(hub)}/beacon/v1/batch?writeKey={WRITE_KEY}",
        content=orjson.dumps({**body, "sentAt": iso(datetime.now(UTC))}),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": SHOP},
    )
    assert answer.status_code == 200, answer.text
    wait_for(lambda: profile_by(api, user_id=user), what="the beacon's profile")


def test_the_sdks_settings_name_the_hub(hub: Hub) -> None:
    segment = httpx.get(f"{base(hub)}/v1/projects/{WRITE_KEY}/settings", headers={"Origin": SHOP})
    assert segment.status_code == 200 and segment.headers["access-control-allow-origin"] == "*"
    api_host = f"127.0.0.1:{hub.settings.api_port}/v1"
    assert segment.json()["integrations"]["Segment.io"] == {
        "apiKey": WRITE_KEY,
        "apiHost": api_host,
        "protocol": "http",
    }
    rudder = httpx.get(f"{base(hub)}/sourceConfig/", params={"writeKey": WRITE_KEY, "p": "npm"})
    assert rudder.status_code == 200 and rudder.json()["source"]["destinations"] == []
    assert httpx.get(f"{base(hub)}/v1/projects/nope/settings").status_code == 404


def test_a_trait_over_a_limit_is_a_dead_letter_naming_it(hub: Hub) -> None:
    user = uid("big-trait-")
    msg = {"userId": user, "traits": {"notes": "x" * (MAX_TRAIT_VALUE_BYTES + 1)}, "messageId": uid("m-")}
    assert httpx.post(base(hub) + "/v1/identify", json=msg, headers={"Authorization": BASIC}).status_code == 200
    letters = read_topic(hub, DEADLETTER, lambda d: user in d["original"], want=1)
    assert letters and letters[0]["reason"].startswith("Value error, trait 'notes' is larger than")
