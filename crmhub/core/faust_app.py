"""Shared faust-streaming set-up for the segmenter and the notifier, with the embedded broker's workarounds."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any, cast

import faust
import redis.asyncio as aioredis
from aiokafka.errors import IllegalStateError
from faust.exceptions import ConsumerNotStarted
from faust.streams import _current_event, current_event

from crmhub.core import kafka as kafka_io
from crmhub.core import metrics
from crmhub.core.effects import DeadLetter, Effect, Publish
from crmhub.core.errors import is_retryable
from crmhub.core.faust_fixes import WATCHDOG_LOOK_S, TableManager, Watchdog, unacknowledged
from crmhub.core.instance import instance_name
from crmhub.core.logs import setup_logging
from crmhub.core.net import free_port
from crmhub.core.runtime import (
    DEFAULT_BACKOFF,
    METER_INTERVAL_S,
    TRIM_INTERVAL_S,
    Backoff,
    poison_letter,
    release_free_memory,
    tune_gc,
)
from crmhub.core.settings import Settings
from crmhub.core.sink import count_metrics, fill_pipeline
from crmhub.core.topics import DEADLETTER

log = logging.getLogger("crmhub")
REDIS_WAIT_S = 30.0
# the producers wait 5 ms to fill a batch (faust: 0): a notifier's batch of table writes went out in batches
# of a record or two, and Tansu 0.6 serves no fetch from a partition of that many batches (BROKER.md)
PRODUCER_LINGER_S = 0.005


def create_app(app_id: str, settings: Settings) -> faust.App:
    """A faust app for ``settings``, with the metering, watchdog and memory-trimming timers."""
    app = faust.App(app_id, **app_options(app_id, settings))
    service = app_id.removeprefix("crmhub-")

    @app.timer(interval=METER_INTERVAL_S)
    async def meter() -> None:
        await record_consumer(app, service)

    watchdog = Watchdog(app)

    async def watch_partitions() -> None:
        await watchdog()

    add_timer(app, WATCHDOG_LOOK_S, watch_partitions)

    @app.timer(interval=TRIM_INTERVAL_S)
    async def trim() -> None:
        release_free_memory()

    return app


def app_options(app_id: str, settings: Settings) -> dict[str, Any]:
    # one directory per instance: faust's stores keep per-worker files there (several workers of one app
    # on one machine must not share them, as faust's docs say)
    datadir = settings.data_dir / "faust" / app_id / instance_name(app_id.removeprefix("crmhub-"))
    datadir.mkdir(parents=True, exist_ok=True)
    return {
        "broker": f"kafka://{settings.bootstrap_servers}",
        "store": "memory://",
        "datadir": str(datadir),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": 1,
        "broker_session_timeout": kafka_io.SESSION_TIMEOUT_MS / 1000,
        "web_enabled": False,
        # faust binds its web server even when disabled: keep it on loopback, on a port of its own
        "web_host": "127.0.0.1",
        "web_port": free_port(),
        "key_serializer": "raw",
        "value_serializer": "raw",
        "consumer_auto_offset_reset": "earliest",
        # records fetched ahead per stream (default 4096): a record of crm.profile-changes.v1 holds up to
        # 500 profiles, so a catch-up would hold gigabytes; 256 keeps the workers busy
        "stream_buffer_maxsize": 256,
        "producer_linger": PRODUCER_LINGER_S,
        "TableManager": TableManager,  # its recovery drops no record fetched while the streams resume
    }


async def record_consumer(app: faust.App, service: str) -> None:
    """The lag of the agents' partitions (changelogs left out) and the process's memory, into the metrics
    (``metrics.record_consumer``, as the kafka-python runtime does).

    The lag counts the records not handled yet: those the broker holds beyond the consumer's position, and
    those fetched that no agent has acknowledged (in a stream's buffer, up to ``stream_buffer_maxsize``
    records, or being handled). The position alone says 0 with a full buffer still to handle, and a broker
    rollover that trusted it lost those records with the old broker (seen: 34 records in the notifier's
    hands while its lag read 0)."""
    lags: dict[tuple[str, int], int] = {}
    try:
        in_hand = unacknowledged(app.consumer)
        assigned = [tp for tp in app.consumer.assignment() if tp.topic.startswith("crm.")]
        for tp in assigned:
            position = await asyncio.wait_for(app.consumer.position(tp), timeout=METER_INTERVAL_S)
            lag = metrics.lag_of(app.consumer.highwater(tp), position)
            if lag is not None:
                lags[(tp.topic, tp.partition)] = lag + in_hand[tp]
    except (ConsumerNotStarted, IllegalStateError, TimeoutError):
        metrics.record_memory(service)
        return  # starting, or partitions moving in a rebalance: the next round has the figures
    metrics.record_consumer(service, lags)


def add_timer(app: faust.App, interval_s: float, action: Callable[[], Awaitable[None]]) -> None:
    """Run ``action`` every ``interval_s`` seconds. A server that does not answer (Redis restarting, SQL
    busy) skips that round with a warning; any other error goes up. An exception out of a faust timer
    stops the whole worker (seen: the notifier's stats counter while the embedded Redis restarted)."""

    async def guarded() -> None:
        try:
            await action()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            log.warning("timer %s skipped a round: %r", action.__name__, exc)

    app.timer(interval=interval_s, name=action.__name__)(guarded)


def run_worker(build: Callable[[Settings], faust.App], settings: Settings, service: str) -> None:
    """Logging first (what ``build`` logs is kept), then the app ``build`` makes, on the topics."""
    setup_logging(settings, service)
    app = build(settings)
    tune_gc()  # as the kafka-python services do: each record decodes a batch of up to 500 documents
    kafka_io.wait_until_reachable(settings)
    kafka_io.ensure_topics(settings)
    # our logging (text or JSON), not the handlers faust's Worker would install when it starts
    worker = faust.Worker(
        app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False, override_logging=False
    )
    worker.spinner = None  # its terminal escapes would land in the log file between the (JSON) lines
    worker.execute_from_commandline()


def async_redis(settings: Settings) -> aioredis.Redis:
    """The faust services' Redis client. Its pool makes a task wait for a free connection (up to
    :data:`REDIS_WAIT_S`, then a retryable error) rather than fail at once: a burst of alerts starts a
    delivery task each, and with the default pool those beyond its 100 connections failed and waited in the
    outbox for the next recovery round (seen: 400 of them in 10 s of a journeys benchmark)."""
    pool = aioredis.BlockingConnectionPool.from_url(settings.redis_dsn, max_connections=64, timeout=REDIS_WAIT_S)
    return aioredis.Redis.from_pool(pool)


class EventScope:
    """faust's current event: the record a table write belongs to (it names the changelog partition the
    write goes to). Captured when a write is made and put back when a held write is carried out
    (``services/notifier/journeys/staging.py``), so records handled together still write each to its own
    partition."""

    def current(self) -> object:
        return current_event()

    @contextmanager
    def restore(self, event: Any) -> Iterator[None]:
        token = _current_event.set(weakref.ref(event))
        try:
            yield
        finally:
            _current_event.reset(token)


class Guard:
    """The runtime's error handling for a faust agent's records (``crmhub.core.runtime`` does the same for
    the kafka-python services): a retryable error (a server not answering) is logged and the same record
    handled again after a backoff, never skipped; any other exception makes the record a dead letter with
    its reason and location, and the stream goes on (a faust agent that raises stops consuming)."""

    def __init__(
        self,
        app: faust.App,
        service: str,
        redis: Any,
        clock: Callable[[], datetime],
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.service, self.clock, self.backoff = service, clock, backoff
        self.sink = FaustSink(app, service, redis, clock)

    async def process(self, message: Any, handle: Callable[[], Awaitable[object]]) -> None:
        attempt = 0
        while True:
            try:
                await handle()
                return
            except Exception as exc:
                if not is_retryable(exc):
                    await self.dead_letter(message, exc)
                    return
                attempt += 1
                delay = self.backoff.delay(attempt)
                log.warning("%s: %r; handling the same record again in %.1f s", self.service, exc, delay)
                await asyncio.sleep(delay)

    async def process_batch(self, events: Sequence[Any], handle: Callable[[Sequence[Any]], Awaitable[object]]) -> None:
        """Records (faust events) handled together, retried as :meth:`process` retries one; should one of
        them not be handled (any other exception), they are handled again one by one (so only the poison
        one becomes a dead letter; what the others did is done again, which ``handle`` must allow, as it
        allows a replay)."""
        attempt = 0
        while True:
            try:
                await handle(events)
                return
            except Exception as exc:
                if not is_retryable(exc):
                    log.warning("%s: %r in a batch of %d records; one by one now", self.service, exc, len(events))
                    break
                attempt += 1
                delay = self.backoff.delay(attempt)
                log.warning("%s: %r; handling the same records again in %.1f s", self.service, exc, delay)
                await asyncio.sleep(delay)
        for event in events:
            await self.process(event.message, partial(handle, [event]))

    async def dead_letter(self, message: Any, exc: Exception) -> None:
        log.error("poison %s[%d]@%d: %r", message.topic, message.partition, message.offset, exc, exc_info=exc)
        await self.sink.carry_out(poison_letter(self.service, message, exc, self.clock()).effects)


class FaustSink:
    """The runtime's effects (``crmhub.core.effects``) carried out on faust's producer and an asyncio
    Redis, in the order ``crmhub.core.sink.Sink`` carries them out for the kafka-python services: records
    sent and delivered, then one Redis pipeline, then the metrics."""

    def __init__(self, app: faust.App, service: str, redis: Any, clock: Callable[[], datetime]) -> None:
        self.app, self.service, self.redis, self.clock = app, service, redis, clock

    async def carry_out(self, effects: Sequence[Effect]) -> None:
        if not effects:
            return
        dead = [e for e in effects if isinstance(e, DeadLetter)]
        sent = [await self._send(e) for e in dead]
        sent += await self._publish([e for e in effects if isinstance(e, Publish)])
        await asyncio.gather(*sent)
        pipe = self.redis.pipeline(transaction=False)
        if fill_pipeline(pipe, effects, dead):
            await pipe.execute()
        count_metrics(self.service, self.clock, effects, dead)

    async def _send(self, effect: DeadLetter) -> Awaitable[Any]:
        """Enqueue on faust's producer itself (not ``Topic.send``: a third of the cost per record); the
        result resolves once the broker has the record."""
        return await self.app.producer.send(DEADLETTER, None, effect.value, None, None, None)

    async def _publish(self, records: Sequence[Publish]) -> list[Awaitable[Any]]:
        """The records packed into a batch per partition (aiokafka's ``create_batch``/``send_batch``): a
        batch costs about what one record's ``send`` does, and a new profile enters a dozen segments at
        once. A keyed record goes to the default partitioner's partition (murmur2, as ``send`` picks it);
        an unkeyed one without a partition is sent alone (to a partition the producer picks)."""
        if not records:
            return []
        producer = cast(Any, self.app.producer)._ensure_producer()  # faust's aiokafka producer (no public accessor)
        counts: dict[str, int] = {}
        groups: dict[tuple[str, int], list[Publish]] = {}
        sent = []
        for record in records:
            partition = record.partition
            if partition is None and record.key is not None:
                if record.topic not in counts:
                    counts[record.topic] = len(await producer.partitions_for(record.topic))
                partition = kafka_io.partition_for_key(record.key, counts[record.topic])
            if partition is None:
                sent.append(await producer.send(record.topic, record.value))
            else:
                groups.setdefault((record.topic, partition), []).append(record)
        for (topic, partition), group in groups.items():
            sent += await _send_batches(producer, topic, partition, group)
        return sent


async def _send_batches(producer: Any, topic: str, partition: int, records: Sequence[Publish]) -> list[Any]:
    """The records in as few batches as they fit (a record too big for a batch is sent alone: the
    producer's error says so); the futures resolve once the broker has them."""
    sent, batch = [], producer.create_batch()
    for record in records:
        if batch.append(key=record.key, value=record.value, timestamp=None) is not None:
            continue
        if batch.record_count():
            sent.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            if batch.append(key=record.key, value=record.value, timestamp=None) is not None:
                continue
        sent.append(await producer.send(topic, record.value, key=record.key, partition=partition))
    if batch.record_count():
        sent.append(await producer.send_batch(batch, topic, partition=partition))
    return sent
