"""Where the state machine's alerts go: delivery (``delivery.py``) to ``crm.alerts.v1`` and the routed
sinks, dead letters for deliveries that failed, and the alert log's count for a collapsed alert."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import faust
import httpx
import redis.asyncio as aioredis

from crmhub.core import metrics
from crmhub.core.routing import load_routes, parse_rate_limits
from crmhub.core.settings import Settings
from crmhub.core.stats import RECENT_DEADLETTERS, STATS_KEY, push_recent
from crmhub.core.topics import ALERTS, DEADLETTER
from schemas.outputs import Alert, DeadLetter
from services.notifier.alertlog import raise_count
from services.notifier.delivery import DeadLetterFn, Dispatcher, RedisDeliveryState, make_sinks
from services.notifier.retry import RetryPolicy
from services.notifier.rules import RecentIds
from services.notifier.sinks import Publish, TopicSink

log = logging.getLogger("crmhub.notifier")
SERVICE = "notifier"
Clock = Callable[[], datetime]


class AlertSubmitter:
    """Hands alerts to delivery once (all of a call in one round trip); raised again with a higher count
    (failed payments), the alert log takes the count and no sink hears of it again."""

    def __init__(self, dispatcher: Dispatcher, redis: aioredis.Redis) -> None:
        self.dispatcher, self.redis = dispatcher, redis
        self.fired = RecentIds(100_000)  # alert ids (#count) this process submitted: skip the Redis round trip

    async def __call__(self, alerts: Sequence[Alert]) -> None:
        todo: dict[str, Alert] = {}
        for alert in alerts:
            if (key := _fired_key(alert)) not in self.fired:
                todo.setdefault(key, alert)
        # claims the ids (once, in Redis); deliveries run in the background
        for (key, alert), claimed in zip(todo.items(), await self.dispatcher.submit(list(todo.values())), strict=True):
            if claimed:
                metrics.ALERTS_RAISED.labels(alert.kind).inc()
                log.info("alert %s %s raised", alert.kind, alert.alert_id, extra={"alert_id": alert.alert_id})
            elif alert.kind == "payment_failed" and (count := alert.details.get("count")) is not None:
                await raise_count(self.redis, alert.alert_id, count)
            self.fired.add(key)


def _fired_key(alert: Alert) -> str:
    count = alert.details.get("count") if alert.kind == "payment_failed" else None
    return f"{alert.alert_id}#{count}"


def build_dispatcher(app: faust.App, settings: Settings, redis: aioredis.Redis, clock: Clock) -> Dispatcher:
    """Alerts to crm.alerts.v1 and to the sinks the routes file names; failures to crm.deadletter.v1."""
    routes = load_routes(settings.routes_file)
    client = httpx.AsyncClient(timeout=settings.delivery_timeout_s, follow_redirects=False)
    topic_sink = TopicSink(redis, alert_publisher(app))
    return Dispatcher(
        routes=routes,
        sinks=make_sinks(routes, topic_sink, client, time.time, settings.delivery_timeout_s),
        state=RedisDeliveryState(redis),
        policy=RetryPolicy(settings.delivery_attempts, settings.delivery_backoff_s, settings.delivery_backoff_max_s),
        limits=parse_rate_limits(settings.alert_rate_limits),
        dead_letter=dead_letter_writer(app, redis, clock),
        clock=time.time,
        attempt_timeout_s=settings.delivery_timeout_s,
    )


def alert_publisher(app: faust.App) -> Publish:
    alerts_topic = app.topic(ALERTS, key_type=bytes, value_type=bytes)

    async def publish(alert: Alert, doc: bytes) -> None:
        sent = await alerts_topic.send(key=alert.profile_id.encode(), value=doc)
        await sent  # the broker has it: only now is the topic marked delivered
        metrics.PRODUCED.labels(SERVICE, ALERTS, alert.kind).inc()

    return publish


def dead_letter_writer(app: faust.App, redis: aioredis.Redis, clock: Clock) -> DeadLetterFn:
    write = letter_writer(app, redis)

    async def dead_letter(alert: Alert, sink: str, reason: str) -> None:
        letter = DeadLetter(
            reason=f"alert delivery to {sink} failed: {reason}",
            location=f"sink:{sink}",
            source="notifier",
            request_id=alert.alert_id,
            received_at=clock(),
            original=alert.model_dump_json(),
        )
        await write(letter, alert.profile_id.encode())

    return dead_letter


def letter_writer(app: faust.App, redis: aioredis.Redis) -> Callable[[DeadLetter, bytes], Awaitable[None]]:
    """Dead letters of the notifier's deliveries to crm.deadletter.v1 (under ``key``), counted, and listed
    among the recent ones on the dashboard."""
    dead_topic = app.topic(DEADLETTER, key_type=bytes, value_type=bytes)

    async def write(letter: DeadLetter, key: bytes) -> None:
        doc = letter.model_dump_json().encode()
        await (await dead_topic.send(key=key, value=doc))
        metrics.PRODUCED.labels(SERVICE, DEADLETTER, "deadletter").inc()
        metrics.DEADLETTERS.labels(SERVICE, metrics.reason_label(letter.reason, letter.location)).inc()
        pipe = redis.pipeline(transaction=False)
        push_recent(pipe, RECENT_DEADLETTERS, [doc])
        pipe.hincrby(STATS_KEY, "notifier.deadletters", 1)
        await pipe.execute()

    return write
