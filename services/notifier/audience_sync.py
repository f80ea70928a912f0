"""Audience sync: a segment's membership changes (``crm.segments.v1``), in batches, as signed JSON POSTs to
the webhook sink its ``sync`` setting names (:mod:`crmhub.core.audience`, ``docs/segments.md``).

It runs in the notifier because the notifier already reads ``crm.segments.v1`` (journeys start on
segment changes), re-reads a customer's freshest profile (for the consented contact points) and owns the
webhook machinery: signatures, retries with backoff, dead letters. The segmenter stays free of HTTP, so a
slow receiver never holds back membership.

Exactly once per batch, in Redis, per segment:

1. The agent appends each change that is news (:func:`~services.notifier.audiences.is_news`) to the
   segment's queue and remembers it as the profile's last change, both in one transaction: a replayed or
   re-published change is not queued twice, and a change is queued before its record is committed.
2. A tick cuts batches off the queue (one Lua script: the changes move from the queue to the segment's
   outbox under the next sequence number), so a batch's content is fixed before it is first sent and
   every attempt, after any crash, sends the same bytes under the same id (``Idempotency-Key``).
3. One delivery at a time per segment (a lease), oldest batch first; a batch leaves the outbox when the
   webhook accepted it, or after the last attempt (then as a dead letter). A crash between the webhook's
   2xx and that removal sends that batch again, same id and bytes (receivers de-duplicate on the id).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import faust
import httpx
import orjson
import redis.asyncio as aioredis

from crmhub.core.audience import AudienceSync, current_syncs
from crmhub.core.errors import ConfigError
from crmhub.core.faust_app import add_timer
from crmhub.core.routing import WebhookSink, load_routes
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from schemas.outputs import DeadLetter
from services.notifier.alerting import letter_writer
from services.notifier.audiences import batch_body, batch_id, batches_due, is_news, marker, sync_entry
from services.notifier.customers import Fresh
from services.notifier.retry import RetryPolicy, with_retries
from services.notifier.signature import HEADER, signature_header
from services.notifier.webhook import USER_AGENT, post

log = logging.getLogger("crmhub.notifier.audiences")

ReadFresh = Callable[[Sequence[str]], Awaitable[dict[str, Fresh]]]
DeadBatch = Callable[[str, str, str, bytes, str], Awaitable[None]]  # (segment, webhook, batch id, body, reason)
PREFIX = "crmhub:sync:"
TICK_S = 0.5  # how often batches are cut and deliveries started

# KEYS: queue, sequence, outbox (hash seq -> batch). ARGV: the most changes a batch carries.
_CUT = """
local n = math.min(tonumber(ARGV[1]), redis.call('LLEN', KEYS[1]))
if n == 0 then return 0 end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[3], seq, '[' .. table.concat(redis.call('LRANGE', KEYS[1], 0, n - 1), ',') .. ']')
redis.call('LTRIM', KEYS[1], n, -1)
return seq
"""


def key(kind: str, segment: str) -> str:
    """``queue`` (list of changes), ``last`` (profile -> last change), ``seq``, ``outbox``, ``lease``."""
    return f"{PREFIX}{kind}:{segment}"


class AudienceSyncer:
    def __init__(
        self,
        redis: aioredis.Redis,
        read_fresh: ReadFresh,
        client: httpx.AsyncClient,
        policy: RetryPolicy,
        dead_batch: DeadBatch,
        clock: Callable[[], float],
        lease_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.redis, self.read_fresh, self.client, self.policy = redis, read_fresh, client, policy
        self.dead_batch, self.clock, self.lease_s, self.sleep, self.jitter = dead_batch, clock, lease_s, sleep, jitter
        self._cut = redis.register_script(_CUT)
        self.syncs: dict[str, tuple[AudienceSync, WebhookSink]] = {}
        self.waiting_since: dict[str, float] = {}  # segment -> when its queue was first seen not empty
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def use(self, syncs: Mapping[str, AudienceSync], sinks: Mapping[str, Any]) -> None:
        """The settings in force; one naming no webhook sink of the routes file is left out, logged."""
        found = {}
        for segment, sync in syncs.items():
            sink = sinks.get(sync.webhook)
            if isinstance(sink, WebhookSink):
                found[segment] = (sync, sink)
            elif segment not in self.syncs:
                log.error("segment %s: sync.webhook %r is no webhook sink of the routes file", segment, sync.webhook)
        if found != self.syncs:
            log.info(
                "audience syncs in force: %s", ", ".join(f"{n} to {s.webhook}" for n, (s, _) in found.items()) or "none"
            )
        self.syncs = found

    async def on_change(self, change: dict[str, Any]) -> None:
        """A record of ``crm.segments.v1`` (decoded): queued when its segment is synced and it is news."""
        segment, pid = change["segment"], change["profile_id"]
        if segment not in self.syncs:
            return
        last = cast(bytes | None, await self.redis.hget(key("last", segment), pid))
        if not is_news(last.decode() if last else None, change["change"], change["at"]):
            return
        fresh = (await self.read_fresh([pid]))[pid]
        entry = sync_entry(change, None if fresh.erased else fresh.profile)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key("last", segment), pid, marker(change["change"], change["at"]))
        pipe.rpush(key("queue", segment), orjson.dumps(entry))
        await pipe.execute()

    async def forget(self, profile_id: str) -> None:
        """An erased profile: its last change is forgotten (changes already queued or cut go out as they are)."""
        if self.syncs:
            pipe = self.redis.pipeline(transaction=False)
            for segment in self.syncs:
                pipe.hdel(key("last", segment), profile_id)
            await pipe.execute()

    async def tick(self) -> None:
        """Cut the batches that are due and start delivering every segment with batches in its outbox."""
        now = self.clock()
        for segment, (sync, sink) in self.syncs.items():
            await self.cut(segment, sync, now)
            if segment not in self.tasks and await self.redis.hlen(key("outbox", segment)):
                task = asyncio.create_task(self.deliver(segment, sink), name=f"sync {segment}")
                self.tasks[segment] = task
                task.add_done_callback(partial(self._done, segment))

    async def cut(self, segment: str, sync: AudienceSync, now: float) -> None:
        queued = int(await self.redis.llen(key("queue", segment)))
        if not queued:
            self.waiting_since.pop(segment, None)
            return
        since = self.waiting_since.setdefault(segment, now)
        due = batches_due(queued, sync.batch, now - since, sync.every.total_seconds())
        for _ in range(due):
            await self._cut(
                keys=[key("queue", segment), key("seq", segment), key("outbox", segment)], args=[sync.batch]
            )
        if due * sync.batch >= queued:  # the queue is empty: the next change starts the wait again
            self.waiting_since.pop(segment, None)

    async def deliver(self, segment: str, sink: WebhookSink) -> None:
        """The segment's outbox, oldest batch first, under the segment's lease (one deliverer at a time)."""
        lease = key("lease", segment)
        if not await self.redis.set(lease, b"1", nx=True, px=int(self.lease_s * 1000)):
            return  # another instance is delivering them
        try:
            while seqs := sorted(int(s) for s in await self.redis.hkeys(key("outbox", segment))):
                await self.redis.set(lease, b"1", px=int(self.lease_s * 1000))
                changes = cast(bytes, await self.redis.hget(key("outbox", segment), seqs[0]))
                await self.send(segment, sink, seqs[0], changes)
                await self.redis.hdel(key("outbox", segment), seqs[0])
        finally:
            await self.redis.delete(lease)

    async def send(self, segment: str, sink: WebhookSink, seq: int, changes: bytes) -> None:
        body = batch_body(segment, seq, changes)
        outcome = await with_retries(
            lambda attempt: post(
                self.client, sink.url, body, self.headers(sink, batch_id(segment, seq), body, attempt)
            ),
            self.policy,
            self.sleep,
            self.jitter,
        )
        if outcome.delivered:
            log.info("sync batch %s delivered (attempt %d)", batch_id(segment, seq), outcome.attempts)
        else:
            log.warning("sync batch %s failed: %s", batch_id(segment, seq), outcome.reason)
            await self.dead_batch(segment, self.syncs[segment][0].webhook, batch_id(segment, seq), body, outcome.reason)

    def headers(self, sink: WebhookSink, batch: str, body: bytes, attempt: int) -> dict[str, str]:
        """As the alert webhooks' (signed at the time of the attempt), with the batch id as the idempotency key."""
        return {
            **sink.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            HEADER: signature_header(sink.signing_secret, body, int(self.clock())),
            "Idempotency-Key": batch,
            "Crmhub-Delivery-Attempt": str(attempt),
        }

    def _done(self, segment: str, task: asyncio.Task[None]) -> None:
        self.tasks.pop(segment, None)
        if not task.cancelled() and task.exception() is not None:  # Redis away: the next tick starts again
            log.error("sync of segment %s stopped: %r", segment, task.exception())


def build_syncer(app: faust.App, settings: Settings, redis: aioredis.Redis, read_fresh: ReadFresh) -> AudienceSyncer:
    """The syncer with the settings in force now, read again every ``segment_tick_s`` (a sync set through
    the API starts within that time; changes published before are not sent: the export is the starting
    audience), its timer, and its dead letters."""
    routes = load_routes(settings.routes_file)
    policy = RetryPolicy(settings.delivery_attempts, settings.delivery_backoff_s, settings.delivery_backoff_max_s)
    client = httpx.AsyncClient(timeout=settings.delivery_timeout_s, follow_redirects=False)
    syncer = AudienceSyncer(
        redis,
        read_fresh,
        client,
        policy,
        dead_batch_writer(app, redis),
        time.time,
        policy.lease_s(settings.delivery_timeout_s),
    )
    engine = make_engine(settings.sql_url, migrate=False)
    syncer.use(current_syncs(settings.segments_file, engine), routes.sinks)

    async def refresh() -> None:
        try:
            syncs = await asyncio.to_thread(current_syncs, settings.segments_file, engine)
        except ConfigError as exc:  # the segment file edited into an error: the settings in force go on
            log.error("audience syncs not reloaded: %s", exc)
            return
        syncer.use(syncs, routes.sinks)

    add_timer(app, settings.segment_tick_s, refresh)
    add_timer(app, TICK_S, syncer.tick)
    return syncer


def dead_batch_writer(app: faust.App, redis: aioredis.Redis) -> DeadBatch:
    write = letter_writer(app, redis)

    async def dead_batch(segment: str, webhook: str, batch: str, body: bytes, reason: str) -> None:
        letter = DeadLetter(
            reason=f"audience sync of {segment} to {webhook} failed: {reason}",
            location=f"sink:{webhook}",
            source="notifier",
            request_id=batch,
            received_at=datetime.now(UTC),
            original=body.decode(),
        )
        await write(letter, segment.encode())

    return dead_batch
