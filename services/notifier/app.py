"""notifier wiring (faust-streaming): profile changes -> complaint alerts and SLA timers, payment-failure
alerts, cart and browse abandonment timers; a timer fires what is due.

Timers live in two faust tables (changelogged, so a restarted notifier recovers them) and hold wall-clock
due times. faust lets only stream processing write a table; the firing timer writes back (a fired wait, a
complaint's next level) to the changelog partition the entry was written to, which every entry records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import faust
import httpx
import orjson
import redis.asyncio as aioredis
from faust.types import TableT

from crmhub import metrics
from crmhub.faust_app import create_app, run_worker
from crmhub.settings import Settings, parse_complaint_sla
from crmhub.stats import RECENT_DEADLETTERS, STATS_KEY, push_recent
from crmhub.topics import ALERTS, DEADLETTER, PROFILE_CHANGES
from schemas.outputs import Alert, DeadLetter
from services.notifier.abandonment import Kind, Pending, abandonment_alert, pending_for, still_due
from services.notifier.alertlog import ERASED_PREFIX, raise_count
from services.notifier.complaints import (
    ComplaintTimer,
    SlaPolicy,
    escalate,
    next_due,
    still_open,
    track_complaints,
)
from services.notifier.delivery import Dispatcher, RedisDeliveryState, make_sinks
from services.notifier.payments import payment_alerts
from services.notifier.retry import RetryPolicy
from services.notifier.routing import load_routes, parse_rate_limits
from services.notifier.rules import RecentIds
from services.notifier.sinks import TopicSink
from services.notifier.timers import DueIndex
from services.notifier.view import ProfileDoc
from services.profile.cache import CACHE_PREFIX
from services.segmenter.keys import profile_segments_key

log = logging.getLogger("crmhub.notifier")
SERVICE = "notifier"
TICK_S = 0.25
RETRY_S = 1.0  # a due timer whose firing failed is tried again this much later
RECOVER_S = 15.0


def write_back(table: TableT[Any, Any], partition: int, key: str, value: dict[str, Any] | None) -> None:
    """Set (None: delete) a table entry outside stream processing, on the entry's changelog partition."""
    if value is None:
        table.data.pop(key, None)
        table.send_changelog(partition, key, None, value_serializer="raw")
    else:
        table.data[key] = value
        table.send_changelog(partition, key, value)


def build(settings: Settings) -> faust.App:
    app = create_app("crmhub-notifier", settings)
    delays: dict[Kind, timedelta] = {"cart_abandoned": timedelta(seconds=settings.abandonment_delay_s)}
    if settings.browse_abandonment_delay_s:
        delays["browse_abandoned"] = timedelta(seconds=settings.browse_abandonment_delay_s)
    sla = SlaPolicy(parse_complaint_sla(settings.complaint_sla), settings.complaint_vip_spend)
    payment_window = timedelta(seconds=settings.payment_failure_window_s)
    changes_topic = app.topic(PROFILE_CHANGES, key_type=bytes, value_type=bytes)
    # "<kind>:<profile id>" -> {"pending": Pending, "version", "partition", "due"}: the abandonment wait
    # ("due": its due time as a timestamp, None once fired; every entry also records the profile version it
    # was set from and its changelog partition)
    waits = app.Table("abandonment", default=None, partitions=settings.partitions)
    # profile id -> {"timers": {message id: ComplaintTimer}, "version", "partition", "due"}: open complaints'
    # SLA clocks ("due": the earliest level due, None when every one is at the top level)
    complaints = app.Table("complaints", default=None, partitions=settings.partitions)
    # which entries come due when, so a tick need not scan the tables; rebuilt after every recovery
    wait_index, complaint_index = DueIndex(), DueIndex()
    waits.on_recover(lambda: rebuilt(wait_index, waits))
    complaints.on_recover(lambda: rebuilt(complaint_index, complaints))
    redis = aioredis.Redis.from_url(settings.redis_dsn)

    dispatcher = build_dispatcher(app, settings, redis)
    fired = RecentIds(100_000)  # alert ids (#count) this process submitted: skip the Redis round trip

    async def raise_alert(alert: Alert) -> None:
        """Hand an alert to delivery once; raised again with a higher count (failed payments), the alert
        log takes the count and no sink hears of it again."""
        count = alert.details.get("count") if alert.kind == "payment_failed" else None
        key = f"{alert.alert_id}#{count}"
        if key in fired:
            return
        if await dispatcher.submit(alert):  # claims the id (once, in Redis); deliveries run in the background
            metrics.ALERTS_RAISED.labels(alert.kind).inc()
            log.info("alert %s %s raised", alert.kind, alert.alert_id, extra={"alert_id": alert.alert_id})
        elif count is not None:
            await raise_count(redis, alert.alert_id, count)
        fired.add(key)

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
                await watch_profile(profile, event.message.partition)
            metrics.BATCH_SECONDS.labels(SERVICE).observe(time.monotonic() - started)

    async def watch_profile(profile: ProfileDoc, partition: int) -> None:
        seen[0] += 1
        pid, version, now = profile["profile_id"], profile.get("version", 0), datetime.now(UTC)
        entry = complaints.get(pid) or {"timers": {}}
        known = {m: ComplaintTimer.from_json(t) for m, t in entry["timers"].items()}
        timers, alerts = track_complaints(known, profile, sla, now)
        if timers.keys() != known.keys():  # a new complaint starts its clock, an answered one stops it
            if timers:
                doc = {m: t.to_json() for m, t in timers.items()}
                due = next_due(timers)
                complaints[pid] = {"timers": doc, "version": version, "partition": partition, "due": due}
                complaint_index.add(pid, due)
            else:
                del complaints[pid]
        for kind, delay in delays.items():
            key, pending = f"{kind}:{pid}", pending_for(kind, profile, delay)
            current = waits.get(key)
            if pending is None:
                if current is not None:
                    del waits[key]  # ordered, emptied, carted before the delay: cancelled
            elif current is None or Pending.from_json(current["pending"]).since != pending.since:
                # a new or changed cart (a new view) restarts the wait
                due = pending.due_at.timestamp()
                waits[key] = {"pending": pending.to_json(), "version": version, "partition": partition, "due": due}
                wait_index.add(key, due)
        for alert in alerts + payment_alerts(profile, payment_window, now):
            await raise_alert(alert)  # at once: complaint / failed payment -> profile -> alert

    @app.timer(interval=TICK_S)
    async def fire_due() -> None:
        now = datetime.now(UTC)
        due_waits = wait_index.pop_due(now.timestamp(), waits.get)
        due_complaints = complaint_index.pop_due(now.timestamp(), complaints.get)
        if due_waits or due_complaints:
            try:
                pids = {doc["pending"]["profile_id"] for _, doc in due_waits} | {pid for pid, _ in due_complaints}
                fresh, segments, erased = await read_fresh(redis, pids)
                for key, doc in due_waits:
                    if doc["pending"]["profile_id"] in erased:
                        write_back(waits, doc["partition"], key, None)  # the person was erased: no alert
                    else:
                        await fire_wait(key, doc, fresh, segments, now)
                for pid, doc in due_complaints:
                    if pid in erased:
                        write_back(complaints, doc["partition"], pid, None)
                    else:
                        await fire_complaints(pid, doc, fresh, now)
            except Exception:  # Redis away for a moment: what is still due is tried again shortly
                log.exception("could not fire the due timers")
                retry = now.timestamp() + RETRY_S
                for index, entries in ((wait_index, due_waits), (complaint_index, due_complaints)):
                    for key, _doc in entries:
                        index.add(key, retry)
        for index, table in ((wait_index, waits), (complaint_index, complaints)):
            if index.needs_rebuild(len(table)):
                index.rebuild(table.items())

    async def fire_wait(
        key: str, doc: dict[str, Any], fresh: dict[str, ProfileDoc], segments: dict[str, list[str]], now: datetime
    ) -> None:
        pending = Pending.from_json(doc["pending"])
        profile = newer(fresh.get(pending.profile_id), doc["version"])
        # the cancel condition, re-checked on the freshest profile: an order or a change since the table's
        # (whose profile change, on its way, updates or cancels the wait)
        if not still_due(pending, profile, delays[pending.kind]):
            return
        await raise_alert(abandonment_alert(pending, profile, segments.get(pending.profile_id, []), now))
        current = waits.get(key)
        if current is not None and current["pending"]["since"] == doc["pending"]["since"]:  # not changed meanwhile
            write_back(waits, current["partition"], key, {**current, "due": None})  # fired: one alert per wait

    async def fire_complaints(pid: str, doc: dict[str, Any], fresh: dict[str, ProfileDoc], now: datetime) -> None:
        profile = newer(fresh.get(pid), doc["version"])
        changes: dict[str, ComplaintTimer | None] = {}  # message id -> its timer after this round (None: closed)
        for message_id, raw in doc["timers"].items():
            timer = ComplaintTimer.from_json(raw)
            if not timer.is_due(now):
                continue
            if not still_open(timer, profile):
                changes[message_id] = None  # answered: the reply closes it (its profile change is on its way)
                continue
            after, alert = escalate(timer, sla, now)
            await raise_alert(alert)
            changes[message_id] = after
        current = complaints.get(pid)  # the agent may have changed the entry while alerts were raised
        if current is None:
            return
        timers = {m: ComplaintTimer.from_json(t) for m, t in current["timers"].items()}
        timers = {m: t for m, t in {**timers, **changes}.items() if t is not None and m in timers}
        doc = {**current, "timers": {m: t.to_json() for m, t in timers.items()}, "due": next_due(timers)}
        write_back(complaints, current["partition"], pid, doc if timers else None)
        complaint_index.add(pid, doc["due"])

    return app


async def rebuilt(index: DueIndex, table: TableT[Any, Any]) -> None:
    """After a recovery: index the table's entries again (a restart or rebalance brought ones it never saw)."""
    index.rebuild(table.items())


def newer(profile: ProfileDoc | None, version: int) -> ProfileDoc | None:
    """The cached profile if it is at least as new as what the timer was set from (else None)."""
    return profile if profile is not None and profile.get("version", 0) >= version else None


async def read_fresh(
    redis: aioredis.Redis, pids: Iterable[str]
) -> tuple[dict[str, ProfileDoc], dict[str, list[str]], set[str]]:
    """The profiles the profile service cached (the freshest there are), the segments each is in (the
    segmenter's view) and which were erased, in one pipeline."""
    ids = sorted(pids)
    pipe = redis.pipeline(transaction=False)
    for pid in ids:
        pipe.get(CACHE_PREFIX + pid)
        pipe.smembers(profile_segments_key(pid))
        pipe.exists(ERASED_PREFIX + pid)
    results = await pipe.execute()
    fresh = {pid: orjson.loads(doc) for pid, doc in zip(ids, results[::3], strict=True) if doc}
    segments = {pid: sorted(m.decode() for m in cast(set[bytes], s)) for pid, s in zip(ids, results[1::3], strict=True)}
    erased = {pid for pid, gone in zip(ids, results[2::3], strict=True) if gone}
    return fresh, segments, erased


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
