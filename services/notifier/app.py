"""notifier wiring (faust-streaming): profile changes -> complaint alerts and cart abandonment timers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis

from crmhub.faust_app import create_app, run_worker
from crmhub.settings import Settings
from crmhub.stats import STATS_KEY
from crmhub.topics import ALERTS, PROFILE_CHANGES
from schemas.outputs import Alert
from services.notifier.rules import PendingCart, RecentIds, cart_alert, complaint_alerts, pending_cart
from services.notifier.sinks import AlertSink

log = logging.getLogger("crmhub.notifier")
TICK_S = 0.25


def build(settings: Settings) -> faust.App:
    app = create_app("crmhub-notifier", settings)
    delay = timedelta(seconds=settings.abandonment_delay_s)
    changes_topic = app.topic(PROFILE_CHANGES, key_type=bytes, value_type=bytes)
    alerts_topic = app.topic(ALERTS, key_type=bytes, value_type=bytes)
    # profile id -> the pending abandonment timer of its current cart (absent: nothing to wait for)
    carts = app.Table("carts", default=None, partitions=settings.partitions)
    redis = aioredis.Redis.from_url(settings.redis_dsn)

    async def publish(alert: Alert, doc: bytes) -> None:
        await alerts_topic.send(key=alert.profile_id.encode(), value=doc)

    sink = AlertSink(redis, publish)
    fired = RecentIds(100_000)  # alert ids this process delivered or saw delivered: skip the Redis check

    async def deliver_once(alert: Alert) -> None:
        if alert.alert_id not in fired:
            fired.add(alert.alert_id)
            await sink.deliver(alert)

    seen = [0]  # profile changes handled since the last flush of the counter

    @app.timer(interval=1.0)
    async def count_seen() -> None:
        if seen[0]:
            n, seen[0] = seen[0], 0
            await redis.hincrby(STATS_KEY, "notifier.profiles", n)

    @app.agent(changes_topic)
    async def watch_profiles(stream: Any) -> None:
        # each record is a batch of changes of profiles that hash to its partition (see segmenter)
        async for event in stream.events():
            for profile in orjson.loads(event.value):
                await watch_profile(profile)

    async def watch_profile(profile: dict[str, Any]) -> None:
        seen[0] += 1
        pid = profile["profile_id"]
        for alert in complaint_alerts(profile, datetime.now(UTC)):
            await deliver_once(alert)  # at once: complaint -> profile -> alert
        pending = pending_cart(profile, delay)
        current = carts.get(pid)
        if pending is None:
            if current is not None:
                del carts[pid]  # ordered or emptied before the delay: cancelled
        elif current is None or current["cart_updated_at"] != pending.to_json()["cart_updated_at"]:
            carts[pid] = pending.to_json()  # a new or changed cart restarts the wait

    @app.timer(interval=TICK_S)
    async def fire_due_carts() -> None:
        now = datetime.now(UTC)
        for _pid, doc in list(carts.items()):
            if doc is None:
                continue
            cart = PendingCart.from_json(doc)
            # the table holds the cart's current state, so the cancel condition is re-checked here
            if cart.due_at <= now:
                await deliver_once(cart_alert(cart, now))

    return app


def main() -> None:
    settings = Settings()
    run_worker(build(settings), settings, "notifier")
