"""The notifier's rules on the real embedded stack, with short clocks: cart abandonment (consented
channel, items, segments; internal without consent; a change restarts the wait), browse abandonment,
complaint SLA escalation to levels 2 and 3 and the reply that stops it, failed payments collapsed with a
count, the alert log's filters and acknowledgement, ``crmhub tail alerts``, and timers that survive a
notifier killed or stopped in the middle of a delay.

A hub of its own (ingest, profile, notifier, API), with a routes file sending cart alerts to a
``marketing`` webhook and an internal ``team`` webhook served by this module on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis
from kafka import KafkaProducer

from crmhub.core import kafka as kafka_io
from crmhub.core.topics import ALERTS
from crmhub.hub import Hub, running_hub
from schemas.readmodels.segments import profile_segments_key
from tests.integration.helpers import (
    Receiver,
    alerting_settings,
    api_client,
    complaint_mention,
    now_iso,
    profile_by,
    publish,
    read_topic,
    restart_notifier,
    segment_track,
    uid,
    wait_for,
)

pytestmark = pytest.mark.integration

CART_DELAY_S = 12.0  # longer than a notifier restart, so the restart tests stop it in the middle
BROWSE_DELAY_S = 5.0
SLA_NORMAL_S = 5.0
SECRET = "whsec-notifier"


@dataclass
class Stack:
    hub: Hub
    http: Receiver
    api: httpx.Client
    producer: KafkaProducer
    redis: redis.Redis


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("crmhub-notifier")
    http = Receiver()
    base = f"http://127.0.0.1:{http.port}"
    routes = {
        "sinks": {
            "marketing": {"type": "webhook", "url": f"{base}/marketing", "secret": SECRET},
            "team": {"type": "webhook", "url": f"{base}/team", "secret": SECRET, "internal": True},
        },
        "routes": {"cart_abandoned": ["marketing", "team"], "*": ["console"]},
    }
    settings = alerting_settings(
        data,
        routes,
        abandonment_delay_s=CART_DELAY_S,
        browse_abandonment_delay_s=BROWSE_DELAY_S,
        complaint_sla=f"high:3,normal:{SLA_NORMAL_S},low:30",
        payment_failure_window_s=60,
    )
    with (
        http.running(),
        running_hub(settings, services=("ingest", "profile", "notifier", "api")) as hub,
        api_client(settings) as api,
    ):
        producer = kafka_io.producer(hub.settings)
        r = redis.Redis.from_url(hub.settings.redis_dsn)
        try:
            yield Stack(hub, http, api, producer, r)
        finally:
            producer.close()
            r.close()


def alerts(s: Stack, profile_id: str, kind: str, **filters: str) -> list[dict[str, Any]]:
    response = s.api.get("/v1/alerts", params={"customer": profile_id, "kind": kind, "limit": 100, **filters})
    assert response.status_code == 200, response.text
    return list(response.json())


def on_topic(s: Stack, profile_id: str, kind: str, want: int = 1, timeout_s: float = 3) -> list[dict[str, Any]]:
    return read_topic(
        s.hub, ALERTS, lambda a: a["profile_id"] == profile_id and a["kind"] == kind, want=want, timeout_s=timeout_s
    )


def product(pid: str, price: str, qty: int = 1) -> dict[str, Any]:
    return {"product_id": pid, "name": f"Product {pid}", "category": "shoes", "price": price, "quantity": qty}


def signed_up(anon: str, user: str, email: str, consent: str | None) -> list[dict[str, Any]]:
    """An identify with the e-mail address and, unless None, marketing consent for ``consent``."""
    identify = {
        "type": "identify",
        "messageId": uid("m-"),
        "anonymousId": anon,
        "userId": user,
        "timestamp": now_iso(),
        "traits": {"email": email},
    }
    return [identify] + ([segment_track("consent.granted", {"channel": consent}, anon, user)] if consent else [])


def cart_of(s: Stack, consent: str | None) -> tuple[dict[str, Any], datetime]:
    """A signed-up customer who leaves two products in the cart; the profile and when the cart changed."""
    anon, user = uid("a-"), uid("cart-")
    publish(s.producer, "web", *signed_up(anon, user, f"{user}@example.com", consent))
    publish(
        s.producer,
        "web",
        segment_track("Product Added", product("p1", "40.00", 2), anon, user),
        segment_track("Product Added", product("p2", "9.95"), anon, user),
    )
    profile = wait_for(lambda: (p := profile_by(s.api, user_id=user)) and len(p["cart"]["items"]) == 2 and p, 30)
    return profile, datetime.fromisoformat(profile["cart"]["updated_at"])


def test_a_cart_alert_names_the_consented_channel_items_value_and_segments(s: Stack) -> None:
    profile, changed = cart_of(s, consent="email")
    pid = profile["profile_id"]
    # the segmenter's view of the customer's segments (the segmenter keeps this set when it runs in the hub)
    s.redis.sadd(profile_segments_key(pid), "vip", "shoe_lovers")
    (alert,) = wait_for(lambda: alerts(s, pid, "cart_abandoned"), CART_DELAY_S + 30, what="the cart alert")
    assert datetime.fromisoformat(alert["raised_at"]) >= changed + timedelta(seconds=CART_DELAY_S)  # not early
    d = alert["details"]
    assert d["contact"] == {"channel": "email", "address": f"{profile['identifiers']['customer_id'][0]}@example.com"}
    assert [(i["product_id"], i["quantity"]) for i in d["items"]] == [("p1", 2), ("p2", 1)]
    assert d["item_count"] == 3 and Decimal(d["value"]) == Decimal("89.95")
    assert d["segments"] == ["shoe_lovers", "vip"]
    assert alert["internal"] is False
    done = wait_for(lambda: (a := alerts(s, pid, "cart_abandoned")[0])["status"] == "delivered" and a, 30)
    assert done["deliveries"] == {"topic": "delivered", "marketing": "delivered", "team": "delivered"}
    assert len(s.http.got("/marketing", alert["alert_id"])) == 1 and len(s.http.got("/team", alert["alert_id"])) == 1


def test_without_consent_the_cart_alert_is_internal_and_reaches_only_internal_sinks(s: Stack) -> None:
    profile, _ = cart_of(s, consent=None)
    pid = profile["profile_id"]
    (alert,) = wait_for(lambda: alerts(s, pid, "cart_abandoned"), CART_DELAY_S + 30, what="the internal alert")
    assert alert["internal"] is True and alert["details"]["contact"] is None
    assert alert["summary"].endswith("(no consent to contact: internal)")
    done = wait_for(lambda: (a := alerts(s, pid, "cart_abandoned")[0])["status"] == "delivered" and a, 30)
    assert done["deliveries"] == {"topic": "delivered", "team": "delivered"}
    assert s.http.got("/marketing", alert["alert_id"]) == [] and len(s.http.got("/team", alert["alert_id"])) == 1


def test_a_cart_that_changes_restarts_the_wait_and_one_emptied_in_time_raises_nothing(s: Stack) -> None:
    anon, user = uid("a-"), uid("change-")
    other_anon, other = uid("a-"), uid("empty-")
    publish(
        s.producer,
        "web",
        segment_track("Product Added", product("p1", "5.00"), anon, user),
        segment_track("Product Added", product("p1", "5.00"), other_anon, other),
    )
    wait_for(lambda: profile_by(s.api, user_id=user) and profile_by(s.api, user_id=other), 30)
    time.sleep(CART_DELAY_S / 2)
    publish(
        s.producer,
        "web",
        segment_track("Product Added", product("p2", "7.00"), anon, user),  # the wait starts again
        segment_track("Product Removed", product("p1", "5.00"), other_anon, other),  # emptied: cancelled
    )
    profile = wait_for(lambda: (p := profile_by(s.api, user_id=user)) and len(p["cart"]["items"]) == 2 and p, 30)
    changed = datetime.fromisoformat(profile["cart"]["updated_at"])
    (alert,) = wait_for(lambda: alerts(s, profile["profile_id"], "cart_abandoned"), CART_DELAY_S + 30)
    assert datetime.fromisoformat(alert["raised_at"]) >= changed + timedelta(seconds=CART_DELAY_S)
    assert alert["details"]["since"] == changed.isoformat() and alert["details"]["item_count"] == 2
    time.sleep(2)
    assert len(on_topic(s, profile["profile_id"], "cart_abandoned", want=2)) == 1  # one alert per cart
    emptied = profile_by(s.api, user_id=other)
    assert emptied is not None and emptied["cart"]["items"] == []
    assert alerts(s, emptied["profile_id"], "cart_abandoned") == []


def test_browse_abandonment_is_a_second_kind(s: Stack) -> None:
    browser, carter = uid("browse-"), uid("carter-")
    publish(
        s.producer,
        "web",
        segment_track("Product Viewed", product("p3", "120.00"), uid("a-"), browser),
        segment_track("Product Viewed", product("p4", "80.00"), uid("a-"), browser),
        segment_track("Product Viewed", product("p3", "120.00"), uid("a-"), carter),
        segment_track("Product Added", product("p3", "120.00"), uid("a-"), carter),
    )
    b = wait_for(lambda: (p := profile_by(s.api, user_id=browser)) and len(p["recent_views"]) == 2 and p, 30)
    c = wait_for(lambda: (p := profile_by(s.api, user_id=carter)) and p["cart"]["items"] and p, 30)
    (alert,) = wait_for(lambda: alerts(s, b["profile_id"], "browse_abandoned"), BROWSE_DELAY_S + 30)
    assert sorted(v["product_id"] for v in alert["details"]["viewed"]) == ["p3", "p4"]
    assert alert["internal"] is True  # no consent given
    assert alerts(s, c["profile_id"], "browse_abandoned") == []  # a cart: that is the other kind


def complainer(s: Stack, sentiment: float = -0.8) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    email, mention = f"{uid('c')}@example.com", uid("mention-")
    doc = complaint_mention(email, mention)
    doc["properties"]["sentiment"] = sentiment
    publish(s.producer, "social", doc)
    profile = wait_for(lambda: profile_by(s.api, email=email), 30, what="complainer profile")
    return email, mention, doc, profile


def test_an_unanswered_complaint_escalates_to_level_two_then_three(s: Stack) -> None:
    _, mention, doc, profile = complainer(s)  # no orders, very negative: normal priority
    pid, at = profile["profile_id"], datetime.fromisoformat(doc["occurred_at"])
    (first,) = wait_for(lambda: alerts(s, pid, "complaint"), 15, what="the complaint alert")
    assert first["details"]["priority"] == "normal" and first["details"]["level"] == 1
    assert first["details"]["customer"]["open_complaints"] == 1
    levels = wait_for(lambda: len(found := alerts(s, pid, "complaint_escalated")) == 2 and found, 2 * SLA_NORMAL_S + 30)
    by_level = {a["details"]["level"]: a for a in levels}
    assert set(by_level) == {2, 3}
    for level, alert in by_level.items():
        assert alert["details"]["message_id"] == mention and alert["details"]["priority"] == "normal"
        assert datetime.fromisoformat(alert["raised_at"]) >= at + timedelta(seconds=(level - 1) * SLA_NORMAL_S)
    time.sleep(SLA_NORMAL_S + 1)  # no level 4, and each level once on the topic
    assert len(on_topic(s, pid, "complaint_escalated", want=3)) == 2


def test_a_reply_stops_the_escalation_and_records_the_first_response_time(s: Stack) -> None:
    email, mention, doc, profile = complainer(s)
    pid = profile["profile_id"]
    replied = datetime.fromisoformat(doc["occurred_at"]) + timedelta(seconds=1.5)
    reply = {
        "event_id": uid("r-"),
        "source": "support",
        "type": "support.complaint_responded",
        "occurred_at": replied.isoformat(),
        "email": email,
        "properties": {"message_id": mention, "agent": "sam"},
    }
    wait_for(lambda: alerts(s, pid, "complaint"), 15, what="the complaint alert")
    publish(s.producer, "support", reply)
    answered = wait_for(lambda: (p := profile_by(s.api, email=email)) and not p["open_complaints"] and p, 30)
    assert answered["last_first_response_s"] == 1.5 and answered["complaints_answered"] == 1
    time.sleep(2 * SLA_NORMAL_S + 2)
    assert alerts(s, pid, "complaint_escalated") == []


def failed_payment(email: str, order_id: str, reason: str) -> dict[str, Any]:
    return {
        "event_id": uid("pf-"),
        "source": "payment",
        "type": "payment.failed",
        "occurred_at": now_iso(),
        "email": email,
        "properties": {"payment_id": uid("pay-"), "order_id": order_id, "amount": "49.90", "reason_code": reason},
    }


def test_repeated_payment_failures_of_an_order_collapse_into_one_alert_with_a_count(s: Stack) -> None:
    email, order, other_order = f"{uid('p')}@example.com", uid("o-"), uid("o-")
    publish(s.producer, "payment", failed_payment(email, order, "declined"))
    profile = wait_for(lambda: profile_by(s.api, email=email), 30)
    pid = profile["profile_id"]
    (first,) = wait_for(lambda: alerts(s, pid, "payment_failed"), 15, what="the payment alert")
    assert first["details"]["count"] == 1 and first["details"]["order_id"] == order
    for reason in ("insufficient_funds", "expired"):
        publish(s.producer, "payment", failed_payment(email, order, reason))
        time.sleep(0.5)
    (collapsed,) = wait_for(
        lambda: [a for a in alerts(s, pid, "payment_failed") if a["details"]["count"] == 3], 30, what="count 3"
    )
    assert collapsed["alert_id"] == first["alert_id"]
    publish(s.producer, "payment", failed_payment(email, other_order, "declined"))
    wait_for(lambda: len(alerts(s, pid, "payment_failed")) == 2, 30, what="the other order's alert")
    # on the topic (and every sink): the first order's alert once, as first raised
    by_id: dict[str, int] = {}
    for a in on_topic(s, pid, "payment_failed", want=4):
        by_id[a["alert_id"]] = by_id.get(a["alert_id"], 0) + 1
    assert by_id[first["alert_id"]] == 1 and len(by_id) == 2


def test_the_alert_log_filters_by_kind_status_and_customer_and_acknowledges(s: Stack) -> None:
    *_, profile = complainer(s, sentiment=-0.1)
    pid = profile["profile_id"]
    (alert,) = wait_for(lambda: alerts(s, pid, "complaint", status="delivered"), 30, what="a delivered complaint")
    assert alerts(s, pid, "complaint", status="acknowledged") == []
    assert alerts(s, pid, "cart_abandoned") == []
    everything = s.api.get("/v1/alerts", params={"customer": pid}).json()
    assert [a["alert_id"] for a in everything] == [alert["alert_id"]]
    assert any(a["profile_id"] != pid for a in s.api.get("/v1/alerts", params={"kind": "complaint"}).json())
    acked = s.api.post(f"/v1/alerts/{alert['alert_id']}/ack")
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    again = s.api.post(f"/v1/alerts/{alert['alert_id']}/ack").json()
    assert again["acknowledged_at"] == acked.json()["acknowledged_at"]  # idempotent: the first stays
    assert [a["alert_id"] for a in alerts(s, pid, "complaint", status="acknowledged")] == [alert["alert_id"]]
    assert s.api.post("/v1/alerts/complaint:000000000000000000000000/ack").status_code == 404
    assert s.api.get("/v1/alerts", params={"status": "lost"}).status_code == 422
    assert s.api.get("/v1/alerts", params={"kind": "refund"}).status_code == 422


def test_erasing_a_profile_erases_its_alerts_and_the_export_holds_them(s: Stack) -> None:
    *_, profile = complainer(s)
    pid = profile["profile_id"]
    (alert,) = wait_for(lambda: alerts(s, pid, "complaint"), 15, what="the complaint alert")
    exported = s.api.get(f"/v1/profiles/{pid}/export").json()
    assert [a["alert_id"] for a in exported["alerts"]] == [alert["alert_id"]]
    assert exported["alerts"][0]["status"] in ("raised", "delivered")
    assert s.api.delete(f"/v1/profiles/{pid}").status_code == 204
    assert s.api.get("/v1/alerts", params={"customer": pid}).json() == []
    assert alert["alert_id"] not in {a["alert_id"] for a in s.api.get("/v1/alerts", params={"limit": 1000}).json()}
    assert s.api.post(f"/v1/alerts/{alert['alert_id']}/ack").status_code == 404
    time.sleep(SLA_NORMAL_S + 2)  # the complaint's SLA passes: its timer was dropped, nothing escalates
    assert s.api.get("/v1/alerts", params={"customer": pid}).json() == []


def test_tail_alerts_prints_each_alert_readably(s: Stack) -> None:
    _, _, _, profile = complainer(s)
    (alert,) = wait_for(lambda: alerts(s, profile["profile_id"], "complaint"), 15, what="the complaint alert")
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "300", "CRMHUB_KAFKA_URL": s.hub.settings.bootstrap_servers}
    tail = [sys.executable, "-m", "crmhub.cli", "tail", "alerts", "--from-beginning"]
    # 30 s was not enough beside a full suite on a slow machine (it had printed its line, and was closing)
    one = subprocess.run([*tail, "--limit", "1"], env=env, capture_output=True, text=True, timeout=90)
    assert one.returncode == 0 and len(one.stdout.splitlines()) == 1, one.stderr
    proc = subprocess.Popen(  # follows until stopped
        tail,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    wait_for(lambda: any(alert["alert_id"] in x for x in lines), 60, what="tail to print the alert")
    proc.terminate()  # SIGTERM: a clean stop, once it follows (its start-up may take seconds on a busy machine)
    _, err = proc.communicate(timeout=15)
    reader.join(5)
    assert proc.returncode == 0, err
    (line,) = [x for x in lines if alert["alert_id"] in x]
    assert " complaint " in line and profile["profile_id"] in line and "never arrived" in line, line
    assert "Traceback" not in err


@pytest.mark.parametrize("kill", [True, False], ids=["SIGKILL", "SIGTERM"])
def test_a_notifier_restart_in_the_middle_of_the_delay_neither_loses_nor_duplicates_the_alert(
    s: Stack, kill: bool
) -> None:
    profile, changed = cart_of(s, consent="email")
    pid = profile["profile_id"]
    time.sleep(max(0.0, (changed + timedelta(seconds=CART_DELAY_S / 3) - datetime.now(UTC)).total_seconds()))
    restart_notifier(s.hub, kill=kill)  # the timer is in the table's changelog only
    assert alerts(s, pid, "cart_abandoned") == []
    (alert,) = wait_for(lambda: alerts(s, pid, "cart_abandoned"), CART_DELAY_S + 60, what="the alert after restart")
    assert datetime.fromisoformat(alert["raised_at"]) >= changed + timedelta(seconds=CART_DELAY_S)  # not early
    wait_for(lambda: s.http.got("/marketing", alert["alert_id"]), 30, what="the webhook")
    time.sleep(3)
    assert len(on_topic(s, pid, "cart_abandoned", want=2)) == 1
    assert len(s.http.got("/marketing", alert["alert_id"])) == 1
