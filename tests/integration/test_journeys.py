"""Journeys on the real embedded stack: a journey file (``CRMHUB_JOURNEYS_FILE``) run by the notifier.
An event triggers a message at once, to the routed webhook of its channel only, once however often the
customer triggers it again; a wait survives a SIGKILL of the notifier and its message goes out once, not
early, with the profile read from SQL once the cache no longer holds it, and across a stop and start of
the whole hub (the tables carried to the new broker); the counts per step, the
profile's journey history and its erasure through the API (history and table entries); the command line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
import yaml
from kafka import KafkaProducer

from crmhub.broker_tables import read_changelogs
from crmhub.core import kafka as kafka_io
from crmhub.hub import Hub, running_hub
from schemas.readmodels.profiles import CACHE_PREFIX
from tests.integration.helpers import (
    Receiver,
    alerting_settings,
    api_client,
    crmhub,
    now_iso,
    profile_by,
    publish,
    restart_notifier,
    segment_track,
    uid,
    wait_for,
)

pytestmark = pytest.mark.integration

WAIT_S = 12  # longer than a notifier restart, so the test kills it in the middle
SECRET = "whsec-journeys"
PRODUCT = {"product_id": "p1", "name": "Lamp", "category": "home", "price": "30.00", "quantity": 1}
REMINDER = "still thinking about {{ trigger.data.name }}, {{ profile.traits.first_name }}?"
JOURNEYS = {
    "journeys": [
        {
            "id": "welcome",
            "status": "active",
            "trigger": {"event": "Checkout Started"},
            "reentry": "never",
            "steps": [
                {
                    "name": "hello",
                    "send": "webhook",
                    "consent": "email",
                    "template": "Welcome {{ profile.traits.first_name }}",
                }
            ],
        },
        {
            "id": "nudge",
            "status": "active",
            "trigger": {"event": "Product Added"},
            "steps": [
                {"name": "pause", "wait": f"{WAIT_S}s"},
                {"name": "remind", "send": "topic", "template": REMINDER},
            ],
        },
    ]
}


@dataclass
class Stack:
    hub: Hub
    http: Receiver
    api: httpx.Client
    producer: KafkaProducer


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("crmhub-journeys")
    http = Receiver()
    base = f"http://127.0.0.1:{http.port}"
    routes = {
        "sinks": {
            "hook": {"type": "webhook", "url": f"{base}/hook", "secret": SECRET},
            "chat": {"type": "slack", "url": f"{base}/chat"},
        },
        "routes": {"journey": ["hook", "chat"], "*": ["console"]},
    }
    (data / "journeys.yaml").write_text(yaml.safe_dump(JOURNEYS))
    settings = alerting_settings(data, routes, journeys_file=data / "journeys.yaml")
    with (
        http.running(),
        running_hub(settings, services=("ingest", "profile", "notifier", "api")) as hub,
        api_client(settings) as api,
    ):
        producer = kafka_io.producer(hub.settings)
        try:
            yield Stack(hub, http, api, producer)
        finally:
            producer.close()


def journey_alerts(s: Stack, profile_id: str) -> list[dict[str, Any]]:
    response = s.api.get("/v1/alerts", params={"customer": profile_id, "kind": "journey", "limit": 100})
    assert response.status_code == 200, response.text
    return list(response.json())


def customer(s: Stack) -> tuple[str, str, dict[str, Any]]:
    """A customer with an e-mail address, a first name and e-mail consent, folded into a profile."""
    anon, user = uid("a-"), uid("j-")
    identify = {
        "type": "identify",
        "messageId": uid("m-"),
        "anonymousId": anon,
        "userId": user,
        "timestamp": now_iso(),
        "traits": {"email": f"{user}@example.com", "first_name": "Ada"},
    }
    publish(s.producer, "web", identify, segment_track("consent.granted", {"channel": "email"}, anon, user))
    profile = wait_for(lambda: (p := profile_by(s.api, user_id=user)) and p["consent"].get("email") and p, 30)
    return anon, user, profile


def test_an_event_sends_the_message_once_to_the_webhook_of_its_channel(s: Stack) -> None:
    anon, user, profile = customer(s)
    pid = profile["profile_id"]
    publish(s.producer, "web", segment_track("Checkout Started", {"order_id": uid("o-")}, anon, user))
    (alert,) = wait_for(lambda: journey_alerts(s, pid), 30, what="the welcome message")
    assert alert["summary"] == "Welcome Ada" and alert["details"]["journey"] == "welcome"
    wait_for(lambda: s.http.got("/hook", alert["alert_id"]), 30, what="the webhook")
    publish(
        s.producer, "web", segment_track("Checkout Started", {"order_id": uid("o-")}, anon, user)
    )  # re-entry: never
    time.sleep(3)
    assert len(journey_alerts(s, pid)) == 1 and len(s.http.got("/hook")) >= 1
    assert s.http.got("/chat") == []  # routed for journeys, but a slack sink: not the message's channel
    counts = s.api.get("/v1/journeys/welcome").json()["steps"][0]["counts"]
    assert int(counts["sent"]) >= 1 and int(counts["entered"]) >= 1
    history = s.api.get(f"/v1/profiles/{pid}/journeys").json()
    assert [h["what"] for h in history] == ["exited", "sent"] and history[1]["id"] == alert["alert_id"]
    assert pid.encode() in b"".join(journey_keys(s.hub))
    assert s.api.delete(f"/v1/profiles/{pid}").status_code == 204
    assert s.api.get(f"/v1/profiles/{pid}/journeys").json() == []
    wait_for(lambda: pid.encode() not in b"".join(journey_keys(s.hub)), 30, what="the enrollments erased")


def journey_keys(hub: Hub) -> list[bytes]:
    """The keys the journey tables hold now (their changelogs read to the end)."""
    tables = [
        c for c in read_changelogs(hub.settings) if c.topic.endswith(("-journeys-changelog", "-customers-changelog"))
    ]
    assert len(tables) == 2, [c.topic for c in tables]
    return [key for table in tables for _, key in table.state]


def test_a_wait_survives_a_killed_notifier_and_its_message_goes_out_once_not_early(s: Stack) -> None:
    anon, user, profile = customer(s)
    pid = profile["profile_id"]
    started = datetime.now(UTC)
    publish(s.producer, "web", segment_track("Product Added", PRODUCT, anon, user))
    time.sleep(WAIT_S / 3)
    restart_notifier(s.hub, kill=True)  # the enrollment is in the table's changelog only
    redis.Redis.from_url(s.hub.settings.redis_dsn).delete(CACHE_PREFIX + pid)  # as if an hour had passed
    assert journey_alerts(s, pid) == []
    (alert,) = wait_for(lambda: journey_alerts(s, pid), WAIT_S + 60, what="the reminder after the restart")
    assert alert["summary"] == "still thinking about Lamp, Ada?"  # the profile read from SQL
    assert datetime.fromisoformat(alert["raised_at"]) >= started + timedelta(seconds=WAIT_S)
    time.sleep(3)
    assert len(journey_alerts(s, pid)) == 1


def test_the_command_line_lists_shows_and_dry_runs_a_journey(s: Stack) -> None:
    _, _, profile = customer(s)
    listed = crmhub(s.hub, "journeys", "list")
    assert listed.returncode == 0, listed.stderr
    assert "welcome" in listed.stdout and "nudge" in listed.stdout
    shown = crmhub(s.hub, "journeys", "show", "nudge")
    assert shown.returncode == 0 and "step remind" in shown.stdout, shown.stderr
    tried = crmhub(s.hub, "journeys", "test", "welcome", "--profile", profile["profile_id"])
    assert tried.returncode == 0, tried.stderr
    assert "send webhook (journey): Welcome Ada" in tried.stdout and "exited: completed" in tried.stdout
    waited = crmhub(s.hub, "journeys", "test", "nudge", "--profile", profile["profile_id"])
    assert "step pause: waits" in waited.stdout and f"+0:00:{WAIT_S}" in waited.stdout, waited.stdout
    missing = crmhub(s.hub, "journeys", "show", "nope")
    assert missing.returncode == 2 and "no journey 'nope'" in missing.stderr


def test_a_wait_survives_a_stop_and_start_of_the_whole_hub(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The embedded broker starts empty: the journey's enrollment comes back with the tables the stop saved."""
    data = tmp_path_factory.mktemp("crmhub-journeys-restart")
    (data / "journeys.yaml").write_text(yaml.safe_dump(JOURNEYS))
    settings = alerting_settings(data, {"routes": {"*": ["console"]}}, journeys_file=data / "journeys.yaml")
    services = ("ingest", "profile", "notifier", "api")
    with running_hub(settings, services=services) as hub, api_client(settings) as api:
        producer = kafka_io.producer(hub.settings)
        stack = Stack(hub, Receiver(), api, producer)
        anon, user, profile = customer(stack)
        started = datetime.now(UTC)
        publish(producer, "web", segment_track("Product Added", PRODUCT, anon, user))
        producer.close()
        counts = lambda: api.get("/v1/journeys/nudge").json()["steps"][0]["counts"]  # noqa: E731
        wait_for(lambda: int(counts().get("waiting", 0)) > 0, 30, what="the customer waiting in the journey")
    assert (data / "broker-tables.json").exists()
    with running_hub(settings, services=services) as hub, api_client(settings) as api:
        stack = Stack(hub, Receiver(), api, producer)
        (alert,) = wait_for(lambda: journey_alerts(stack, profile["profile_id"]), WAIT_S + 60, what="the reminder")
        assert datetime.fromisoformat(alert["raised_at"]) >= started + timedelta(seconds=WAIT_S)
        time.sleep(3)
        assert len(journey_alerts(stack, profile["profile_id"])) == 1


CART_VIEWED = {
    "id": "cart-look",
    "trigger": {"event": "Cart Viewed"},
    "steps": [{"name": "say", "send": "topic", "template": "v1 for {{ profile.traits.first_name }}"}],
}


def test_journeys_made_changed_paused_and_deleted_through_the_api_run_without_a_restart(s: Stack) -> None:
    bad = s.api.post("/v1/journeys", json={**CART_VIEWED, "steps": [{"name": "say", "send": "topic"}]})
    assert bad.status_code == 400 and "journey 'cart-look', step 'say'" in bad.json()["detail"], bad.text
    assert s.api.post("/v1/journeys", json={**CART_VIEWED, "id": "welcome"}).status_code == 409  # the file's
    made = s.api.post("/v1/journeys", json=CART_VIEWED)
    assert made.status_code == 201 and made.json()["version"] == 1, made.text
    assert s.api.post("/v1/journeys", json=CART_VIEWED).status_code == 409
    assert [j["id"] for j in s.api.get("/v1/journeys").json() if not j["from_file"]] == ["cart-look"]

    def views_cart() -> dict[str, Any]:
        anon, user, profile = customer(s)
        publish(s.producer, "web", segment_track("Cart Viewed", {"cart_id": uid("c-")}, anon, user))
        return profile

    first = views_cart()
    (alert,) = wait_for(lambda: journey_alerts(s, first["profile_id"]), 30, what="the API journey's message")
    assert alert["summary"] == "v1 for Ada"

    steps = [{"name": "say", "send": "topic", "template": "v2 for {{ profile.traits.first_name }}"}]
    changed = s.api.put("/v1/journeys/cart-look", json={**CART_VIEWED, "steps": steps})
    assert changed.status_code == 200 and changed.json()["version"] == 2, changed.text
    time.sleep(2)  # the notifier reads the definitions every CRMHUB_SEGMENT_TICK_S (1 s)
    second = views_cart()
    (alert,) = wait_for(lambda: journey_alerts(s, second["profile_id"]), 30, what="the changed message")
    assert alert["summary"] == "v2 for Ada"

    paused = s.api.post("/v1/journeys/cart-look/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused" and paused.json()["version"] == 3
    time.sleep(2)
    third = views_cart()
    assert s.api.delete("/v1/journeys/cart-look").status_code == 204
    assert s.api.get("/v1/journeys/cart-look").status_code == 404
    assert s.api.delete("/v1/journeys/cart-look").status_code == 404
    versions = s.api.get("/v1/journeys/cart-look/versions").json()
    assert [(v["version"], v["deleted"]) for v in versions] == [(4, True), (3, False), (2, False), (1, False)]
    assert versions[1]["journey"]["status"] == "paused" and versions[0]["saved_by"] == "bootstrap"
    time.sleep(3)
    assert journey_alerts(s, third["profile_id"]) == []  # paused, then deleted: never sent
