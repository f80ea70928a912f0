"""The embedded Redis killed mid-stream on a supervised hub: the hub starts it again on the same data (its
append-only file), the services wait while it is away and go on where they were, and every result is exact:
orders counted once (the dedup claims and the identity index survived), one alert per complaint."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import redis

from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.topics import ALERTS
from crmhub.hub import Hub, running_hub
from tests.integration.helpers import api_client, now_iso, profile_by, read_to_end, restarts, uid, wait_for

pytestmark = pytest.mark.integration
CUSTOMERS = 30
ORDERS = 600  # 20 each, 10.01 each
WEB_KEY, SOCIAL_KEY = "test-web-key", "test-social-key"


@pytest.fixture
def redis_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("redis-restart"),
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        write_keys=f"{WEB_KEY}:web,{SOCIAL_KEY}:social",
        api_token="test-token",
        batch_size=50,
        complaint_sla="high:86400,normal:86400,low:86400",  # level 1 only
    )
    with running_hub(settings, supervise=True) as hub:
        yield hub


def inputs(run: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, write key, body): the orders, and every 20th input a complaint of one of the customers."""
    found = []
    for n in range(ORDERS):
        user = f"{run}-c{n % CUSTOMERS}"
        props = {"order_id": f"{run}-o{n}", "total": "10.01", "currency": "EUR"}
        body = {"userId": user, "event": "Order Completed", "messageId": f"{run}-m{n}", "properties": props}
        found.append(("/v1/track", WEB_KEY, body))
        if n % 20 == 0:
            found.append(("/v1/events", SOCIAL_KEY, complaint(user, f"{run}-mention{n}")))
    return found


def complaint(user: str, mention: str) -> dict[str, Any]:
    props = {"message_id": mention, "platform": "twitter", "handle": "@c", "text": "Late!", "complaint": True}
    doc = {"event_id": uid("s-"), "source": "social", "type": "social.mention", "occurred_at": now_iso()}
    return {**doc, "customer_id": user, "properties": props}


class Sender(threading.Thread):
    """Posts every input until the collector acknowledges it, as an SDK retries; counts the answers."""

    def __init__(self, hub: Hub, run: str) -> None:
        super().__init__(daemon=True)
        self.url, self.inputs, self.acked = f"http://127.0.0.1:{hub.settings.api_port}", inputs(run), 0
        self.refused: list[int] = []  # the statuses other than 200 seen (a retry followed each)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for path, key, body in self.inputs:
                while not self.post(client, path, key, body):
                    time.sleep(0.2)
                self.acked += 1
                time.sleep(0.01)

    def post(self, client: httpx.Client, path: str, key: str, body: dict[str, Any]) -> bool:
        try:
            status = client.post(path, json=body, auth=(key, "")).status_code
        except httpx.TransportError:
            return False
        if status != 200:
            self.refused.append(status)
        return status == 200


def kill_redis(hub: Hub) -> None:
    """SIGKILL the embedded Redis server and wait until the hub has it answering again."""
    assert hub.redis_server is not None and hub.redis_server.proc is not None
    killed = hub.redis_server.proc.pid
    os.kill(killed, signal.SIGKILL)
    client = redis.Redis.from_url(hub.redis_server.url, socket_timeout=1)

    def answers() -> bool:
        assert hub.redis_server is not None and hub.redis_server.proc is not None
        try:
            return hub.redis_server.proc.pid != killed and bool(client.ping())
        except redis.RedisError:
            return False

    wait_for(answers, 30, "Redis restarted by the hub")
    client.close()


def test_redis_killed_mid_stream_is_restarted_and_every_result_is_exact(redis_hub: Hub) -> None:
    run = uid("rr")
    sender = Sender(redis_hub, run)
    sender.start()
    wait_for(lambda: sender.acked >= len(sender.inputs) // 3, 120, "a third of the inputs acknowledged")
    kill_redis(redis_hub)
    sender.join(timeout=300)
    assert not sender.is_alive()
    print(f"answers other than 200 while Redis was away (each retried): {sender.refused}")
    with api_client(redis_hub.settings) as api:
        check_orders(api, run)
        check_complaints(redis_hub, api, run)
        assert restarts(api) == {"redis": 1.0}, "no service crashed while Redis was away"
    assert redis_hub.failure is None
    assert all(c.proc.poll() is None for c in redis_hub.children)


def check_orders(api: httpx.Client, run: str) -> None:
    each = ORDERS // CUSTOMERS
    want = {f"{run}-c{c}": (each, Decimal("10.01") * each) for c in range(CUSTOMERS)}

    def totals() -> dict[str, tuple[int, Decimal]]:
        found = {}
        for user in want:
            p = profile_by(api, user_id=user)
            if p is not None:
                found[user] = (p["order_count"], Decimal(p["total_spent"]))
        return found

    try:
        wait_for(lambda: totals() == want, 120, "every order counted exactly once")
    except AssertionError:
        print("totals:", totals())
        raise


def check_complaints(hub: Hub, api: httpx.Client, run: str) -> None:
    """One alert per complaint in the alert log, and the same alert ids on crm.alerts.v1."""
    mentions = {f"{run}-mention{n}" for n in range(0, ORDERS, 20)}

    def logged() -> list[str]:
        alerts = api.get("/v1/alerts", params={"kind": "complaint", "limit": 1000}).json()
        return sorted(a["details"]["message_id"] for a in alerts if a["details"]["message_id"] in mentions)

    wait_for(lambda: logged() == sorted(mentions), 60, "one alert per complaint")
    time.sleep(2)
    assert logged() == sorted(mentions)
    on_topic = [orjson.loads(r.value) for r in read_to_end(hub, ALERTS)]
    assert {a["details"]["message_id"] for a in on_topic if a["details"].get("message_id") in mentions} == mentions
