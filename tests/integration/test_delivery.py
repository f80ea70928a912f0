"""Alert delivery on the real embedded stack: signed webhooks with retries, a dead letter after the last
try, Slack, e-mail to a real SMTP server (aiosmtpd), rate limits, and once-only across replays and a
restart of the notifier.

A hub of its own (own ports, data dir; no segmenter), with a routes file pointing at receivers this
module runs on 127.0.0.1: ``/flaky`` answers 500 twice per alert and then 204, ``/down`` always 500,
``/slack`` 200.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import httpx
import orjson
import pytest
import redis
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller
from kafka import KafkaProducer

from crmhub.core import kafka as kafka_io
from crmhub.core.net import free_port
from crmhub.core.routing import RateLimit
from crmhub.core.stats import STATS_KEY
from crmhub.core.topics import ALERTS, DEADLETTER
from crmhub.hub import Hub, running_hub
from schemas.outputs import Alert
from services.notifier.delivery import Claim, RedisDeliveryState
from services.notifier.signature import verify_signature
from services.notifier.smtp import message_id as message_id_of
from tests.integration.helpers import (
    Receiver,
    alerting_settings,
    api_client,
    complaint_mention,
    profile_by,
    publish,
    read_topic,
    restart_notifier,
    segment_track,
    uid,
    wait_for,
)

pytestmark = pytest.mark.integration

SECRET = "whsec-test"
ATTEMPTS = 3


class Mailbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def about(self, alert_id: str) -> list[bytes]:
        return [m[2] for m in self.messages if f"X-Crmhub-Alert-Id: {alert_id}".encode() in m[2]]


@dataclass
class Stack:
    hub: Hub
    http: Receiver
    mail: Mailbox
    api: httpx.Client
    producer: KafkaProducer
    redis: redis.Redis


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("crmhub-delivery")
    http, mailbox = Receiver(), Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    base = f"http://127.0.0.1:{http.port}"
    routes = {
        "sinks": {
            "care-hook": {"type": "webhook", "url": f"{base}/flaky", "secret": SECRET},
            "down-hook": {"type": "webhook", "url": f"{base}/down", "secret": SECRET},
            "care-slack": {"type": "slack", "url": f"{base}/slack"},
            "sync-hook": {"type": "webhook", "url": f"{base}/flaky", "secret": SECRET},
            "care-mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "sender": "crmhub@shop.test",
                "to": ["care@shop.test"],
            },
        },
        "routes": {"complaint": ["care-hook", "down-hook", "care-slack", "care-mail", "console"]},
    }
    settings = alerting_settings(
        data,
        routes,
        alert_rate_limits="complaint:2/1h",
        delivery_attempts=ATTEMPTS,
        delivery_timeout_s=5.0,
        segment_tick_s=0.5,  # a segment's sync setting reaches the notifier within this
    )
    smtp.start()
    try:
        with (
            http.running(),
            running_hub(settings, services=("ingest", "profile", "segmenter", "notifier", "api")) as hub,
            api_client(settings) as api,
        ):
            producer = kafka_io.producer(hub.settings)
            r = redis.Redis.from_url(hub.settings.redis_dsn)
            try:
                yield Stack(hub, http, mailbox, api, producer, r)
            finally:
                producer.close()
                r.close()
    finally:
        smtp.stop()


def alerts_on_topic(s: Stack, profile_id: str, want: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    return read_topic(s.hub, ALERTS, lambda a: a["profile_id"] == profile_id, want=want, timeout_s=timeout_s)


def stat(s: Stack, name: str) -> int:
    return int(s.redis.hget(STATS_KEY, name) or 0)


def test_a_complaint_reaches_every_sink_once_signed_with_retries_and_a_dead_letter(s: Stack) -> None:
    email, message_id = f"{uid('c')}@example.com", uid("mention-")
    publish(s.producer, "social", complaint_mention(email, message_id))
    profile = wait_for(lambda: profile_by(s.api, email=email), 60, what="complainer profile")
    (alert,) = wait_for(lambda: alerts_on_topic(s, profile["profile_id"], 1), 60, what="alert on crm.alerts.v1")
    alert_id = alert["alert_id"]
    assert alert["details"]["message_id"] == message_id

    # the receiver that fails twice: three tries, exactly one accepted, each signed, same idempotency key
    tries = wait_for(lambda: [r for r in s.http.got("/flaky", alert_id) if r.status == 204], 30, what="webhook")
    hook = s.http.got("/flaky", alert_id)
    assert [r.status for r in hook] == [500, 500, 204] and len(tries) == 1
    for r in hook:
        assert verify_signature(SECRET, r.headers["crmhub-signature"], r.body)
        assert r.headers["idempotency-key"] == alert_id and r.headers["crmhub-alert-kind"] == "complaint"
    assert [r.headers["crmhub-delivery-attempt"] for r in hook] == ["1", "2", "3"]
    assert Alert.model_validate_json(hook[-1].body).alert_id == alert_id

    # the receiver that is down: every try, then a dead letter with the reason
    (letter,) = read_topic(s.hub, DEADLETTER, lambda d: d.get("request_id") == alert_id, want=1, timeout_s=30)
    assert [r.status for r in s.http.got("/down", alert_id)] == [500] * ATTEMPTS
    assert letter["source"] == "notifier" and letter["location"] == "sink:down-hook"
    assert letter["reason"] == f"alert delivery to down-hook failed: HTTP 500 (after {ATTEMPTS} attempts)"
    assert Alert.model_validate_json(letter["original"]).alert_id == alert_id

    # Slack and e-mail
    (slack,) = wait_for(lambda: s.http.got("/slack", alert_id), 30, what="slack message")
    payload = orjson.loads(slack.body)
    assert "never arrived" in payload["text"] and [b["type"] for b in payload["blocks"]] == [
        "header",
        "section",
        "context",
    ]
    (mail,) = wait_for(lambda: s.mail.about(alert_id), 30, what="e-mail")
    parsed = message_from_bytes(mail, policy=policy.default)
    assert str(parsed["Subject"]).startswith("[crmhub] complaint: complaint on twitter by @angry")
    assert parsed["Message-ID"] == message_id_of(Alert.model_validate_json(hook[-1].body))
    assert b"never arrived" in mail
    assert s.mail.messages[-1][1] == ["care@shop.test"]

    statuses = wait_for(lambda: delivery_statuses(s, alert_id) if len(delivery_statuses(s, alert_id)) == 6 else None)
    assert statuses == {
        "topic": "delivered",
        "care-hook": "delivered",
        "down-hook": "dead",
        "care-slack": "delivered",
        "care-mail": "delivered",
        "console": "delivered",
    }

    # the listener re-sends the mention (a new event): the profile changes, the alert is the same: no sink
    # hears of it again
    publish(s.producer, "social", complaint_mention(email, message_id))
    wait_for(lambda: (p := profile_by(s.api, email=email)) and p["version"] == 2, 30, what="re-sent mention folded")
    time.sleep(2.0)
    assert_delivered_once(s, alert_id, profile["profile_id"])

    # a fresh notifier process (nothing in memory) gets the profile again, now with a second complaint:
    # once the second alert is out, the first was raised again before it and Redis said no
    restart_notifier(s.hub)
    second = uid("mention-")
    publish(s.producer, "social", complaint_mention(email, second))
    (other,) = wait_for(
        lambda: [a for a in alerts_on_topic(s, profile["profile_id"], 2) if a["details"]["message_id"] == second],
        # about 1 run in 14 (before the faust corrections of crmhub.core.faust_fixes) the restarted notifier
        # fetched the change and never handled it; its watchdog now fetches a stalled partition again
        # 10-20 s later
        90,
        what="the restarted notifier's alert",
    )
    wait_for(lambda: s.http.got("/slack", other["alert_id"]), 30, what="the second alert on Slack")
    assert_delivered_once(s, alert_id, profile["profile_id"])


def delivery_statuses(s: Stack, alert_id: str) -> dict[str, str]:
    raw = s.redis.hgetall(f"crmhub:delivery:{alert_id}")
    return {k.decode()[5:]: v.decode() for k, v in raw.items() if k.startswith(b"sink:")}


def assert_delivered_once(s: Stack, alert_id: str, profile_id: str) -> None:
    assert [r.status for r in s.http.got("/flaky", alert_id)] == [500, 500, 204]
    assert len(s.http.got("/down", alert_id)) == ATTEMPTS
    assert len(s.http.got("/slack", alert_id)) == 1
    assert len(s.mail.about(alert_id)) == 1
    on_topic = read_topic(s.hub, ALERTS, lambda a: a["alert_id"] == alert_id, want=2, timeout_s=3)
    assert len(on_topic) == 1
    assert len(read_topic(s.hub, DEADLETTER, lambda d: d.get("request_id") == alert_id, want=2, timeout_s=3)) == 1


def test_over_the_rate_limit_an_alert_reaches_only_the_topic(s: Stack) -> None:
    email = f"{uid('c')}@example.com"
    limited_before = stat(s, "notifier.delivery.rate_limited")
    publish(s.producer, "social", *(complaint_mention(email) for _ in range(3)))  # three complaints
    profile = wait_for(lambda: profile_by(s.api, email=email), 60, what="complainer profile")
    alerts = wait_for(lambda: alerts_on_topic(s, profile["profile_id"], 3), 60, what="three alerts on the topic")
    assert len(alerts) == 3
    ids = [a["alert_id"] for a in alerts]
    wait_for(lambda: all(len(delivery_statuses(s, i)) == 6 for i in ids), 30, what="every delivery final")
    by_status = Counter(delivery_statuses(s, i)["care-hook"] for i in ids)
    assert by_status == {"delivered": 2, "rate_limited": 1}
    (limited,) = [i for i in ids if delivery_statuses(s, i)["care-hook"] == "rate_limited"]
    assert set(delivery_statuses(s, limited).values()) == {"delivered", "rate_limited"}  # the topic: delivered
    assert s.http.got("/flaky", limited) == [] and s.mail.about(limited) == []
    assert stat(s, "notifier.delivery.rate_limited") - limited_before == 5  # every routed sink but the topic


def member(s: Stack, tag: str, consent: bool, user: str | None = None) -> str:
    """A customer (``user``: again, with a new tag) with an e-mail address and the trait ``sync == tag``,
    consenting to e-mail marketing or not; the profile id once folded."""
    anon, user = uid("a-"), user or uid("s-")
    traits = {"email": f"{user}@example.com", "sync": tag}
    identify = {"type": "identify", "messageId": uid("m-"), "anonymousId": anon, "userId": user,
                "timestamp": datetime.now(UTC).isoformat(), "traits": traits}  # fmt: skip
    granted = [segment_track("consent.granted", {"channel": "email"}, anon, user)] if consent else []
    publish(s.producer, "web", identify, *granted)
    return str(wait_for(lambda: (p := profile_by(s.api, user_id=user)) and (p["consent"].get("email") or not consent)
                        and p["traits"].get("sync") == tag and p["profile_id"], 30, what=user))  # fmt: skip


def synced(s: Stack, name: str) -> list[dict[str, Any]]:
    """The changes of every batch the sync webhook accepted for segment ``name``."""
    return [c for r in s.http.got("/flaky", f"{name}-") if r.status == 204 for c in orjson.loads(r.body)["changes"]]


def test_a_sync_webhook_gets_a_segments_changes_in_signed_batches_once_each(s: Stack) -> None:
    tag, name = uid(), uid("sync_")
    sync = {"webhook": "sync-hook", "batch": 2, "every": "1s"}
    bad = s.api.post(
        "/v1/segments", json={"name": name, "condition": "order_count > 0", "sync": {"webhook": "care-slack"}}
    )
    assert bad.status_code == 400 and "sync-hook" in bad.json()["detail"]
    made = s.api.post("/v1/segments", json={"name": name, "condition": f'traits["sync"] == "{tag}"', "sync": sync})
    assert made.status_code == 201 and made.json()["sync"] == sync, made.text
    notifier_log = s.hub.log_dir / "notifier.log"  # the notifier reads the settings every segment_tick_s
    wait_for(lambda: f"{name} to sync-hook" in notifier_log.read_text(errors="replace"), 30, what="the setting read")
    users = [uid("s-") for _ in range(3)]
    pids = [member(s, tag, consent, user) for user, consent in zip(users, (True, False, False), strict=True)]
    wait_for(lambda: len(synced(s, name)) == 3, 30, what="the three entries synced")
    member(s, "left", False, users[1])
    wait_for(lambda: len(synced(s, name)) == 4, 30, what="the exit synced")
    time.sleep(2.0)  # nothing more comes: every change once, every batch accepted once

    changes = synced(s, name)
    assert sorted((c["profile_id"], c["change"]) for c in changes) == sorted(
        [(pid, "entered") for pid in pids] + [(pids[1], "exited")]
    )
    contacts = {c["profile_id"]: c["contacts"] for c in changes if c["change"] == "entered"}
    assert contacts == {pids[0]: {"email": f"{users[0]}@example.com"}, pids[1]: {}, pids[2]: {}}
    requests = s.http.got("/flaky", f"{name}-")
    by_batch: dict[str, list[Any]] = {}
    for r in requests:
        assert verify_signature(SECRET, r.headers["crmhub-signature"], r.body)
        by_batch.setdefault(r.alert_id, []).append(r)
    for batch, attempts in by_batch.items():
        assert [r.status for r in attempts] == [500, 500, 204]  # retried under one id, accepted once
        assert len({r.body for r in attempts}) == 1 and orjson.loads(attempts[0].body)["batch_id"] == batch
        assert 1 <= len(orjson.loads(attempts[0].body)["changes"]) <= 2


def test_the_claim_script_on_a_real_redis(s: Stack) -> None:
    async def go() -> None:
        r = aioredis.Redis.from_url(s.hub.settings.redis_dsn)
        state = RedisDeliveryState(r)
        raised = datetime.now(UTC)
        alerts = [
            Alert(alert_id=uid("complaint:t"), kind="complaint", profile_id="P-lua", raised_at=raised, summary="x")
            for _ in range(3)
        ]
        limit = RateLimit(2, 60)
        sinks = ("topic", "care-hook")
        first = [Claim(alerts[0], sinks, limit), Claim(alerts[0], sinks, limit)]
        assert await state.claim(first, 1000.0, 30) == [False, None]  # in one call: the second claimed before
        assert await state.claim([Claim(alerts[1], sinks, limit)], 1001.0, 30) == [False]
        assert await state.claim([Claim(alerts[2], sinks, limit)], 1002.0, 30) == [True]  # the third in a minute
        await state.mark(alerts[0].alert_id, "topic", "delivered")
        assert await state.statuses(alerts[0].alert_id) == {"topic": "delivered"}
        assert [
            p.alert.alert_id for p in await state.take_stale(30, 1003.0, 100) if p.alert.profile_id == "P-lua"
        ] == []
        for a in alerts:
            await r.delete(f"crmhub:delivery:lease:{a.alert_id}")  # as if their leases ran out
        stale = {p.alert.alert_id: p for p in await state.take_stale(30, 1003.0, 1000)}
        assert stale[alerts[0].alert_id].done == {"topic": "delivered"}
        assert stale[alerts[2].alert_id].limited and stale[alerts[2].alert_id].sinks == sinks
        for a in alerts:
            await state.finish(a.alert_id)
        assert not {a.alert_id for a in alerts} & {p.alert.alert_id for p in await state.take_stale(30, 1003.0, 1000)}
        await r.aclose()

    asyncio.run(go())


@pytest.fixture
def s(stack: Stack) -> Stack:
    """Short name of the module's stack in the tests."""
    return stack
