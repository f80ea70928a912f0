"""notifier wiring (faust-streaming): profile changes -> complaint alerts and cart abandonment timers."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import httpx
import orjson
import redis.asyncio as aioredis

from crmhub import metrics
from crmhub.faust_app import create_app, run_worker
from crmhub.settings import Settings
from crmhub.stats import RECENT_DEADLETTERS, STATS_KEY, push_recent
from crmhub.topics import ALERTS, DEADLETTER, PROFILE_CHANGES
from schemas.outputs import Alert, DeadLetter
from services.notifier.delivery import Dispatcher, RedisDeliveryState, make_sinks
from services.notifier.retry import RetryPolicy
from services.notifier.routing import load_routes, parse_rate_limits
from services.notifier.rules import PendingCart, RecentIds, cart_alert, complaint_alerts, pending_cart
from services.notifier.sinks import TopicSink

log = logging.getLogger("crmhub.notifier")
SERVICE = "notifier"
TICK_S = 0.25
RECOVER_S = 15.0


def build(settings: Settings) -> faust.App:
    app = create_app("crmhub-notifier", settings)
    delay = timedelta(seconds=settings.abandonment_delay_s)
    changes_topic = app.topic(PROFILE_CHANGES, key_type=bytes, value_type=bytes)
    # profile id -> the pending abandonment timer of its current cart (absent: nothing to wait for)
    carts = app.Table("carts", default=None, partitions=settings.partitions)
    redis = aioredis.Redis.from_url(settings.redis_dsn)

    dispatcher = build_dispatcher(app, settings, redis)
    fired = RecentIds(100_000)  # alert ids this process submitted or saw submitted: skip the Redis check

    async def deliver_once(alert: Alert) -> None:
        if alert.alert_id not in fired:
            # claims the id (once, in Redis); deliveries run in the background
            if await dispatcher.submit(alert):
                metrics.ALERTS_RAISED.labels(alert.kind).inc()
                log.info("alert %s %s raised", alert.kind, alert.alert_id, extra={"alert_id": alert.alert_id})
            fired.add(alert.alert_id)

    @app.timer(interval=RECOVER_S)
    async def recover_deliveries() -> None:
        try:
            await dispatcher.recover()  # deliveries a crashed process left unfinished
        except Exception:  # Redis away for a moment: the outbox waits for the next round
            log.exception("could not recover unfinished alert deliveries")

    seen = [0]  # profile changes handled since the last flush of the counter

    @app.timer(interval=1.0)
    async def count_seen() -> None:
        if seen[0]:
            n, seen[0] = seen[0], 0
            metrics.CONSUMED.labels(SERVICE, PROFILE_CHANGES, "profile").inc(n)
            await redis.hincrby(STATS_KEY, "notifier.profiles", n)

    @app.agent(changes_topic)
    async def watch_profiles(stream: Any) -> None:
        # each record is a batch of changes of profiles that hash to its partition (see segmenter)
        async for event in stream.events():
            started = time.monotonic()
            for profile in orjson.loads(event.value):
                await watch_profile(profile)
            metrics.BATCH_SECONDS.labels(SERVICE).observe(time.monotonic() - started)

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


def build_dispatcher(app: faust.App, settings: Settings, redis: aioredis.Redis) -> Dispatcher:
    """Alerts to crm.alerts.v1 and to the sinks the routes file names; failures to crm.deadletter.v1."""
    alerts_topic = app.topic(ALERTS, key_type=bytes, value_type=bytes)
    dead_topic = app.topic(DEADLETTER, key_type=bytes, value_type=bytes)
    routes = load_routes(settings.routes_file)

    async def publish(alert: Alert, doc: bytes) -> None:
        sent = await alerts_topic.send(key=alert.profile_id.encode(), value=doc)
        await sent  # the broker has it: only now is the topic marked delivered
        metrics.PRODUCED.labels(SERVICE, ALERTS, alert.kind).inc()

    async def dead_letter(alert: Alert, sink: str, reason: str) -> None:
        doc = (
            DeadLetter(
                reason=f"alert delivery to {sink} failed: {reason}",
                location=f"sink:{sink}",
                source="notifier",
                request_id=alert.alert_id,
                received_at=datetime.now(UTC),
                original=alert.model_dump_json(),
            )
            .model_dump_json()
            .encode()
        )
        await (await dead_topic.send(key=alert.profile_id.encode(), value=doc))
        metrics.PRODUCED.labels(SERVICE, DEADLETTER, "deadletter").inc()
        metrics.DEADLETTERS.labels(SERVICE, metrics.reason_label(reason, f"sink:{sink}")).inc()
        pipe = redis.pipeline(transaction=False)
        push_recent(pipe, RECENT_DEADLETTERS, [doc])
        pipe.hincrby(STATS_KEY, "notifier.deadletters", 1)
        await pipe.execute()

    client = httpx.AsyncClient(timeout=settings.delivery_timeout_s, follow_redirects=False)
    return Dispatcher(
        routes=routes,
        sinks=make_sinks(routes, TopicSink(redis, publish), client, time.time, settings.delivery_timeout_s),
        state=RedisDeliveryState(redis),
        policy=RetryPolicy(settings.delivery_attempts, settings.delivery_backoff_s, settings.delivery_backoff_max_s),
        limits=parse_rate_limits(settings.alert_rate_limits),
        dead_letter=dead_letter,
        clock=time.time,
        attempt_timeout_s=settings.delivery_timeout_s,
    )


def main() -> None:
    settings = Settings()
    run_worker(build, settings, "notifier")
