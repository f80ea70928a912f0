"""Journeys on the real embedded stack: a journey file (``CRMHUB_JOURNEYS_FILE``) run by the notifier.
An event triggers a message at once, to the routed webhook of its channel only, once however often the
customer triggers it again; a wait survives a SIGKILL of the notifier and its message goes out once, not
early, with the profile read from SQL once the cache no longer holds it, and across a stop and start of
the whole hub (the tables carried to the new broker); the counts per step, the
profile's journey history and its erasure through the API (history and table entries); the command line.
Then, in one go with a customer each, driven in parallel (:func:`driven`): a branch taking each side, exit
criteria (ordered since entry, consent withdrawn), consent per channel, quiet hours, the frequency cap
across journeys, a goal's conversion and revenue, and segment-entered and profile-date triggers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
from crmhub.core.stats import read_counts
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
    wait_journeys_in_force,
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
FOLLOW_UP_S = 6  # long enough for an order or a withdrawal published after the entry to be folded first
CAPPED = {"cap": {"messages": 1, "per": "1h"}}
SEGMENTS = {"segments": [{"name": "gold_tier", "condition": 'traits["tier"] == "gold"'}]}


def to_topic(name: str, template: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "send": "topic", "template": template, **more}


SCENARIOS = [  # each triggered by an event type of its own, so that no test's customer wanders into another's
    {
        "id": "tiers",
        "trigger": {"event": "Product Viewed", "where": 'category == "home"'},
        "steps": [
            {"name": "rich", "branch": "total_spent >= 100", "then": "vip"},
            to_topic("regular", "a {{ trigger.data.category }} offer"),
            {"name": "done", "exit": "regular"},
            to_topic("vip", "a vip {{ trigger.data.category }} offer"),
        ],
    },
    {
        "id": "follow-up",
        "trigger": {"event": "Payment Info Entered"},
        "exit": {"ordered_since_entry": True, "consent_withdrawn": True},
        "steps": [{"name": "pause", "wait": f"{FOLLOW_UP_S}s"}, to_topic("ask", "how was it?", consent="email")],
    },
    {
        "id": "channels",
        "trigger": {"event": "Email Link Clicked"},
        "steps": [
            to_topic("text", "an sms", consent="sms"),
            to_topic("text-team", "no sms consent: call them", consent="sms", without_consent="internal"),
            to_topic("mail", "an e-mail", consent="email"),
        ],
    },
    *(
        {
            "id": f"cap-{x}",
            "trigger": {"event": "Push Notification Tapped"},
            "policy": CAPPED,
            "steps": [to_topic("mail", f"from {x}", consent="email")],
        }
        for x in "ab"
    ),
    {
        "id": "goal",
        "trigger": {"event": "Push Notification Received"},
        "goal": {"event": "Order Completed", "within": "1h"},
        "steps": [to_topic("offer", "10% off", consent="email")],
    },
    {
        "id": "gold",
        "trigger": {"segment": "gold_tier", "change": "entered"},
        "steps": [to_topic("hello", "welcome to {{ trigger.name }}", consent="email")],
    },
]


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
    journeys = [*JOURNEYS["journeys"], *({**j, "status": "active"} for j in SCENARIOS)]
    (data / "journeys.yaml").write_text(yaml.safe_dump({"journeys": journeys}))
    (data / "segments.yaml").write_text(yaml.safe_dump(SEGMENTS))
    settings = alerting_settings(
        data, routes, journeys_file=data / "journeys.yaml", segments_file=data / "segments.yaml"
    )
    with (
        http.running(),
        running_hub(settings, services=("ingest", "profile", "segmenter", "notifier", "api")) as hub,
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


def customer(s: Stack, **traits: Any) -> tuple[str, str, dict[str, Any]]:
    """A customer with an e-mail address, a first name (and ``traits``) and e-mail consent, folded into a
    profile."""
    anon, user = uid("a-"), uid("j-")
    identify = {
        "type": "identify",
        "messageId": uid("m-"),
        "anonymousId": anon,
        "userId": user,
        "timestamp": now_iso(),
        "traits": {"email": f"{user}@example.com", "first_name": "Ada", **traits},
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
    wait_journeys_in_force(s.hub.settings, "cart-look v1 active")

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
    wait_journeys_in_force(s.hub.settings, "cart-look v2 active")
    second = views_cart()
    (alert,) = wait_for(lambda: journey_alerts(s, second["profile_id"]), 30, what="the changed message")
    assert alert["summary"] == "v2 for Ada"

    paused = s.api.post("/v1/journeys/cart-look/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused" and paused.json()["version"] == 3
    wait_journeys_in_force(s.hub.settings, "cart-look v3 paused")
    third = views_cart()
    assert s.api.delete("/v1/journeys/cart-look").status_code == 204
    assert s.api.get("/v1/journeys/cart-look").status_code == 404
    assert s.api.delete("/v1/journeys/cart-look").status_code == 404
    versions = s.api.get("/v1/journeys/cart-look/versions").json()
    assert [(v["version"], v["deleted"]) for v in versions] == [(4, True), (3, False), (2, False), (1, False)]
    assert versions[1]["journey"]["status"] == "paused" and versions[0]["saved_by"] == "bootstrap"
    time.sleep(3)
    assert journey_alerts(s, third["profile_id"]) == []  # paused, then deleted: never sent


# --- the engine's rules, one customer each, driven in parallel -------------------------------------------

Customer = tuple[str, str, dict[str, Any]]


def track(s: Stack, who: Customer, event: str, **props: Any) -> None:
    publish(s.producer, "web", segment_track(event, props, who[0], who[1]))


def order(s: Stack, who: Customer, total: str) -> None:
    track(s, who, "Order Completed", order_id=uid("o-"), total=total, currency="EUR")


def counts(s: Stack, journey_id: str) -> dict[str, dict[str, str]]:
    response = s.api.get(f"/v1/journeys/{journey_id}")
    assert response.status_code == 200, response.text
    return {step["name"]: step["counts"] for step in response.json()["steps"]}


def exits(s: Stack, who: Customer) -> list[str]:
    history = s.api.get(f"/v1/profiles/{who[2]['profile_id']}/journeys").json()
    return [h["reason"] for h in history if h["what"] == "exited"]


def alerts_of(s: Stack, who: Customer, want: int, what: str) -> list[dict[str, Any]]:
    pid = who[2]["profile_id"]
    return wait_for(lambda: (found := journey_alerts(s, pid)) and len(found) >= want and found, 30, what=what)


def branch_sides(s: Stack) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rich, plain = customer(s), customer(s)
    order(s, rich, "150.00")
    wait_for(lambda: float(profile_by(s.api, user_id=rich[1])["total_spent"]) >= 150, 30, what="the order folded")
    track(s, plain, "Product Viewed", product_id="p1", category="toys")  # fails the trigger's condition
    for who in (rich, plain):
        track(s, who, "Product Viewed", product_id="p1", category="home")
    return alerts_of(s, rich, 1, "the vip offer"), alerts_of(s, plain, 1, "the regular offer")


def exit_criteria(s: Stack) -> dict[str, Any]:
    ordered, withdrew, stays = customer(s), customer(s), customer(s)
    for who in (ordered, withdrew, stays):
        track(s, who, "Payment Info Entered", payment_method="card")
    wait_for(lambda: int(counts(s, "follow-up")["pause"].get("entered", 0)) >= 3, 30, what="all three waiting")
    order(s, ordered, "20.00")
    track(s, withdrew, "consent.withdrawn", channel="email")
    (stayed,) = alerts_of(s, stays, 1, "the follow-up of the one who stayed")
    found = [wait_for(lambda w=w: exits(s, w), 30, what="the exit") for w in (ordered, withdrew)]  # type: ignore[misc]
    sent = [journey_alerts(s, w[2]["profile_id"]) for w in (ordered, withdrew)]
    return {"exits": found, "sent": sent, "stayed": stayed["summary"]}


def consent_channels(s: Stack) -> list[dict[str, Any]]:
    who = customer(s)
    track(s, who, "Email Link Clicked", email_id=uid("e-"), link_url="https://shop.example/sale")
    return alerts_of(s, who, 2, "the internal and the e-mail message")


AHEAD_S = 15  # quiet hours end, and a date comes, this long after: the journey is read and the customer made first


def notifier_running(s: Stack) -> None:
    """Wait until the notifier has handled a profile change: its recovery done, its timers (which read the
    definitions every second, so a journey made now is in force 2 s later) run too."""
    stats = redis.Redis.from_url(s.hub.settings.redis_dsn)
    wait_for(lambda: read_counts(stats).get("notifier.profiles"), 60, what="the notifier running")


def quiet_hours(s: Stack) -> tuple[datetime, list[dict[str, Any]]]:
    """A journey of its own made through the API, with quiet hours from an hour ago to a few seconds ahead."""
    notifier_running(s)
    now = datetime.now(UTC)
    end = (now + timedelta(seconds=AHEAD_S)).replace(microsecond=0)
    policy = {"quiet_hours": {"start": f"{now - timedelta(hours=1):%H:%M:%S}", "end": f"{end:%H:%M:%S}"}}
    quiet = {
        "id": "quiet",
        "trigger": {"event": "Product Removed"},
        "policy": policy,
        "steps": [to_topic("mail", "after the quiet hours", consent="email")],
    }
    assert s.api.post("/v1/journeys", json=quiet).status_code == 201
    time.sleep(2)  # the notifier reads the definitions every CRMHUB_SEGMENT_TICK_S (1 s)
    who = customer(s)
    track(s, who, "Product Removed", product_id="p1")
    assert datetime.now(UTC) < end, "the machine is too slow for this test's quiet hours"
    return end, alerts_of(s, who, 1, "the message after the quiet hours")


def profile_date(s: Stack) -> tuple[datetime, list[dict[str, Any]]]:
    """30 days before a trait's date, at a time of day a few seconds ahead (a journey made through the API)."""
    notifier_running(s)
    due = (datetime.now(UTC) + timedelta(seconds=AHEAD_S)).replace(microsecond=0)
    renewal = {
        "id": "renewal",
        "trigger": {"date": "traits.renews_on", "offset": "-30d", "at": f"{due:%H:%M:%S}"},
        "steps": [to_topic("remind", "renews on {{ profile.traits.renews_on }}", consent="email")],
    }
    assert s.api.post("/v1/journeys", json=renewal).status_code == 201
    time.sleep(2)
    who = customer(s, renews_on=(due + timedelta(days=30)).date().isoformat())
    return due, alerts_of(s, who, 1, "the renewal reminder")


def capped_pair(s: Stack) -> list[dict[str, Any]]:
    who = customer(s)
    track(s, who, "Push Notification Tapped", campaign_id="c1")
    handled = lambda: sum(int(counts(s, f"cap-{x}")["mail"].get(c, 0)) for x in "ab" for c in ("sent", "skipped: cap"))  # noqa: E731
    wait_for(lambda: handled() >= 2, 30, what="both journeys through their message step")
    return journey_alerts(s, who[2]["profile_id"])


def conversion(s: Stack) -> tuple[dict[str, str], list[dict[str, Any]]]:
    who = customer(s)
    track(s, who, "Push Notification Received", campaign_id="c2")
    alerts_of(s, who, 1, "the offer")
    order(s, who, "42.50")
    offer = wait_for(lambda: (c := counts(s, "goal")["offer"]) and "converted" in c and c, 30, what="the conversion")
    return offer, s.api.get(f"/v1/profiles/{who[2]['profile_id']}/journeys").json()


def segment_entered(s: Stack) -> list[dict[str, Any]]:
    return alerts_of(s, customer(s, tier="gold"), 1, "the welcome to the segment")


DRIVERS: dict[str, Callable[[Stack], Any]] = {
    "branch": branch_sides,
    "exits": exit_criteria,
    "consent": consent_channels,
    "quiet": quiet_hours,
    "date": profile_date,
    "cap": capped_pair,
    "goal": conversion,
    "segment": segment_entered,
}


@pytest.fixture(scope="module")
def driven(s: Stack) -> Iterator[dict[str, Future[Any]]]:
    """Every scenario started at once, each with customers of its own; a test waits for its own."""
    with ThreadPoolExecutor(max_workers=len(DRIVERS)) as pool:
        yield {name: pool.submit(drive, s) for name, drive in DRIVERS.items()}


def test_a_branch_takes_each_side_by_the_customer_and_the_trigger_condition_filters(
    driven: dict[str, Future[Any]],
) -> None:
    rich, plain = driven["branch"].result()
    assert [a["summary"] for a in rich] == ["a vip home offer"]
    assert [a["summary"] for a in plain] == ["a home offer"]  # the toys view did not enter


def test_exit_criteria_are_checked_after_a_wait(driven: dict[str, Future[Any]]) -> None:
    found = driven["exits"].result()
    assert found["exits"] == [["ordered"], ["consent_withdrawn"]] and found["sent"] == [[], []]
    assert found["stayed"] == "how was it?"


def test_consent_is_per_channel_and_without_it_a_message_may_go_to_the_team(
    s: Stack, driven: dict[str, Future[Any]]
) -> None:
    found = {a["summary"]: a["internal"] for a in driven["consent"].result()}
    assert found == {"no sms consent: call them": True, "an e-mail": False}
    assert counts(s, "channels")["text"]["skipped: consent"] == "1"


def test_a_message_due_in_quiet_hours_waits_for_their_end(driven: dict[str, Future[Any]]) -> None:
    end, (alert,) = driven["quiet"].result()
    assert datetime.fromisoformat(alert["raised_at"]) >= end


def test_a_profile_date_is_scheduled_and_fires_at_its_time(driven: dict[str, Future[Any]]) -> None:
    due, (alert,) = driven["date"].result()
    renews_on = (due + timedelta(days=30)).date().isoformat()
    assert alert["summary"] == f"renews on {renews_on}"
    assert due <= datetime.fromisoformat(alert["raised_at"]) < due + timedelta(seconds=20)


def test_the_frequency_cap_holds_across_journeys(s: Stack, driven: dict[str, Future[Any]]) -> None:
    (alert,) = driven["cap"].result()
    assert alert["summary"] in ("from a", "from b")
    skipped = [counts(s, f"cap-{x}")["mail"].get("skipped: cap") for x in "ab"]
    assert set(skipped) == {"1", None}  # the second journey's message was over the cap


def test_an_order_within_the_goal_window_is_attributed_with_its_revenue(driven: dict[str, Future[Any]]) -> None:
    offer, history = driven["goal"].result()
    assert (offer["converted"], offer["revenue"]) == ("1", "42.50")
    assert history[0] == {**history[0], "what": "converted", "journey": "goal", "step": "offer", "revenue": "42.50"}


def test_entering_a_segment_starts_its_journey(driven: dict[str, Future[Any]]) -> None:
    (alert,) = driven["segment"].result()
    assert alert["summary"] == "welcome to gold_tier"
