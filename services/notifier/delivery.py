"""Delivering each alert once to each of its sinks, with retries, dead letters and rate limits.

The notifier hands the alerts it raises to :meth:`Dispatcher.submit`, which costs one Redis round trip
for all the alerts of a call: it *claims* each alert id (a replay, a restart or a second notifier
instance finds it claimed and stops there), decides the rate limit, and writes the alert to an outbox.
The deliveries then run in background tasks, so the faust agent never waits on a webhook, a retry's
backoff or a mail server. Per sink, the state records ``delivered`` only after the sink accepted the
alert, ``dead`` after the last try (and a dead letter on ``crm.deadletter.v1``), or ``rate_limited``. An
alert leaves the outbox when every sink has a final state; one left behind by a crash is picked up again
by :meth:`Dispatcher.recover` once its lease has run out, and only the sinks without a final state are
tried again.

So every sink gets an alert once, except after a crash between a sink's acceptance and the state write:
then that sink gets it again with the same ``Idempotency-Key`` / ``Message-ID`` (at least once, never
lost; receivers de-duplicate on the alert id).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from crmhub.core import metrics
from crmhub.core.routing import TOPIC, RateLimit, Routes, limit_for, window_allows
from crmhub.core.routing import ConsoleSink as ConsoleConfig
from crmhub.core.routing import EmailSink as EmailConfig
from crmhub.core.routing import SlackSink as SlackConfig
from crmhub.core.routing import WebhookSink as WebhookConfig
from crmhub.core.stats import STATS_KEY
from schemas.outputs import Alert
from services.notifier.alertlog import STATE_PREFIX, STATUS_FIELD, index_keys
from services.notifier.coalesce import Coalescer
from services.notifier.retry import RetryPolicy, with_retries
from services.notifier.sinks import ConsoleSink, Sink
from services.notifier.smtp import SmtpSink
from services.notifier.webhook import SlackHttpSink, WebhookHttpSink

log = logging.getLogger("crmhub.notifier.delivery")

Status = Literal["delivered", "dead", "rate_limited"]
DeadLetterFn = Callable[[Alert, str, str], Awaitable[None]]  # (alert, sink, reason)
STATE_TTL_S = 90 * 86400


@dataclass(frozen=True)
class Pending:
    """A claimed alert with what is left to do: its sinks, whether it was rate limited, the final states."""

    alert: Alert
    sinks: tuple[str, ...]
    limited: bool
    done: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """An alert to claim for delivery to ``sinks``, under the rate limit ``limit`` (None: none)."""

    alert: Alert
    sinks: tuple[str, ...]
    limit: RateLimit | None = None


class DeliveryState(Protocol):
    async def claim(self, claims: Sequence[Claim], now: float, lease_s: float) -> list[bool | None]:
        """Claim each alert, in order, and hold its lease; per claim None when its alert was claimed
        before, else whether the rate limit stops it (an alert over the limit does not count towards it)."""

    async def mark(self, alert_id: str, sink: str, status: Status) -> None: ...

    async def finish(self, alert_id: str) -> None:
        """Every sink has a final state: out of the outbox, lease released."""

    async def take_stale(self, lease_s: float, now: float, most: int) -> list[Pending]:
        """Up to ``most`` outbox alerts whose lease has run out, with their lease taken anew."""


class MemoryDeliveryState:
    """In-process state, for unit tests."""

    def __init__(self) -> None:
        self.claimed: dict[str, Pending] = {}
        self.statuses: dict[str, dict[str, str]] = {}
        self.outbox: set[str] = set()
        self.leases: dict[str, float] = {}
        self.sent_at: dict[tuple[str, str], list[float]] = {}
        self.counts: dict[str, int] = {}

    async def claim(self, claims: Sequence[Claim], now: float, lease_s: float) -> list[bool | None]:
        return [self._claim(claim, now, lease_s) for claim in claims]

    def _claim(self, claim: Claim, now: float, lease_s: float) -> bool | None:
        alert = claim.alert
        if alert.alert_id in self.claimed:
            return None
        times = self.sent_at.setdefault((alert.kind, alert.profile_id), [])
        limited = claim.limit is not None and not window_allows(times, now, claim.limit)
        if not limited:
            times.append(now)
        self.claimed[alert.alert_id] = Pending(alert, claim.sinks, limited)
        self.statuses[alert.alert_id] = {}
        self.outbox.add(alert.alert_id)
        self.leases[alert.alert_id] = now + lease_s
        return limited

    async def mark(self, alert_id: str, sink: str, status: Status) -> None:
        self.statuses[alert_id][sink] = status
        self.counts[status] = self.counts.get(status, 0) + 1

    async def finish(self, alert_id: str) -> None:
        self.outbox.discard(alert_id)
        self.leases.pop(alert_id, None)

    async def take_stale(self, lease_s: float, now: float, most: int) -> list[Pending]:
        stale = [a for a in sorted(self.outbox) if self.leases.get(a, 0) <= now][:most]
        for alert_id in stale:
            self.leases[alert_id] = now + lease_s
        return [
            Pending(self.claimed[a].alert, self.claimed[a].sinks, self.claimed[a].limited, dict(self.statuses[a]))
            for a in stale
        ]


# KEYS: state hash, outbox zset, lease, rate zset, then the alert log's indexes (all, kind, customer).
# ARGV: state ttl s, now ms, alert id, alert doc, sinks, limit (0: none), window ms, lease ms.
# Returns -1 when claimed before, else 1 when rate limited, 0 when not.
_CLAIM = """
if redis.call('HSETNX', KEYS[1], 'alert', ARGV[4]) == 0 then return -1 end
local now, limit, limited = tonumber(ARGV[2]), tonumber(ARGV[6]), 0
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[7]))
  if redis.call('ZCARD', KEYS[4]) >= limit then
    limited = 1
  else
    redis.call('ZADD', KEYS[4], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[4], ARGV[7])
  end
end
redis.call('HSET', KEYS[1], 'sinks', ARGV[5], 'limited', limited)
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[8])
for i = 5, 7 do
  redis.call('ZADD', KEYS[i], now, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - tonumber(ARGV[1]) * 1000)
end
return limited
"""
OUTBOX = "crmhub:delivery:outbox"
LEASE_PREFIX = "crmhub:delivery:lease:"
RATE_PREFIX = "crmhub:ratelimit:"


class RedisDeliveryState:
    """The state in Redis: a hash per alert (``crmhub:delivery:<id>``: the alert, its sinks, the rate-limit
    decision and ``sink:<name>`` final states), the outbox, leases, and a sliding window (sorted set) per
    customer and kind for the rate limits. Each claim is one Lua script (atomic), and the claims of a call
    go in one pipeline: one round trip for all the alerts an input record raised. (EVAL, not EVALSHA: a
    restarted Redis has forgotten loaded scripts, and the script's text is small.)"""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        # the deliveries' final states and finishes, each task awaiting its own: a burst's in few round trips
        self._marks = Coalescer[tuple[str, str, Status]](self._mark_all)
        self._finishes = Coalescer[str](self._finish_all)

    async def claim(self, claims: Sequence[Claim], now: float, lease_s: float) -> list[bool | None]:
        pipe = self.redis.pipeline(transaction=False)
        for claim in claims:
            keys, args = _claim_keys(claim.alert), _claim_args(claim, now, lease_s)
            pipe.eval(_CLAIM, len(keys), *keys, *args)
        return [None if int(result) < 0 else bool(int(result)) for result in await pipe.execute()]

    async def mark(self, alert_id: str, sink: str, status: Status) -> None:
        await self._marks((alert_id, sink, status))

    async def _mark_all(self, marks: Sequence[tuple[str, str, Status]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        counts = Counter[str]()
        for alert_id, sink, status in marks:
            pipe.hset(STATE_PREFIX + alert_id, STATUS_FIELD + sink, status)
            counts.update([f"notifier.delivery.{status}", f"notifier.delivery.{sink}.{status}"])
        for name, n in counts.items():
            pipe.hincrby(STATS_KEY, name, n)
        await pipe.execute()

    async def finish(self, alert_id: str) -> None:
        await self._finishes(alert_id)

    async def _finish_all(self, alert_ids: Sequence[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(OUTBOX, *alert_ids)
        pipe.delete(*(LEASE_PREFIX + alert_id for alert_id in alert_ids))
        await pipe.execute()

    async def statuses(self, alert_id: str) -> dict[str, str]:
        """The final state per sink of an alert (for tests and tools)."""
        raw = await self.redis.hgetall(STATE_PREFIX + alert_id)
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return {k[len(STATUS_FIELD) :]: v for k, v in fields.items() if k.startswith(STATUS_FIELD)}

    async def take_stale(self, lease_s: float, now: float, most: int) -> list[Pending]:
        taken: list[Pending] = []
        for raw_id in await self.redis.zrange(OUTBOX, 0, most - 1):
            alert_id = raw_id.decode()
            if not await self.redis.set(LEASE_PREFIX + alert_id, b"1", nx=True, px=int(lease_s * 1000)):
                continue  # being delivered (by us or another instance)
            raw = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(STATE_PREFIX + alert_id)).items()}
            if "alert" not in raw:  # its state expired: nothing left to deliver from
                await self.finish(alert_id)
                continue
            done = {k[len(STATUS_FIELD) :]: v for k, v in raw.items() if k.startswith(STATUS_FIELD)}
            sinks = tuple(s for s in raw.get("sinks", TOPIC).split(",") if s)
            taken.append(Pending(Alert.model_validate_json(raw["alert"]), sinks, raw.get("limited") == "1", done))
        return taken


def _claim_keys(alert: Alert) -> list[str]:
    """The claim script's KEYS (see :data:`_CLAIM`)."""
    return [
        STATE_PREFIX + alert.alert_id,
        OUTBOX,
        LEASE_PREFIX + alert.alert_id,
        f"{RATE_PREFIX}{alert.kind}:{alert.profile_id}",
        *index_keys(alert.kind, alert.profile_id),
    ]


def _claim_args(claim: Claim, now: float, lease_s: float) -> list[str | int]:
    """The claim script's ARGV (see :data:`_CLAIM`)."""
    limit = claim.limit
    return [
        STATE_TTL_S,
        int(now * 1000),
        claim.alert.alert_id,
        claim.alert.model_dump_json(),
        ",".join(claim.sinks),
        limit.most if limit else 0,
        int(limit.window_s * 1000) if limit else 0,
        int(lease_s * 1000),
    ]


class Dispatcher:
    """Hands alerts to their routed sinks, each in a background task (see the module's docstring)."""

    def __init__(
        self,
        *,
        routes: Routes,
        sinks: Mapping[str, Sink],
        state: DeliveryState,
        policy: RetryPolicy,
        limits: Mapping[str, RateLimit],
        dead_letter: DeadLetterFn,
        clock: Callable[[], float],
        attempt_timeout_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.routes = routes
        self.sinks = sinks
        self.state = state
        self.policy = policy
        self.limits = limits
        self.dead_letter = dead_letter
        self.clock = clock
        self.sleep = sleep
        self.jitter = jitter
        self.lease_s = policy.lease_s(attempt_timeout_s)
        self._active: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, alerts: Sequence[Alert]) -> list[bool]:
        """Claim the alerts (in one round trip) and start their deliveries; per alert False when it was
        claimed before (nothing to do)."""
        claims = [
            Claim(a, self.routes.sinks_for(a.kind, a.internal, a.channel), limit_for(self.limits, a.kind))
            for a in alerts
        ]
        claimed = await self.state.claim(claims, self.clock(), self.lease_s) if claims else []
        for claim, limited in zip(claims, claimed, strict=True):
            if limited is not None:
                self._start(Pending(claim.alert, claim.sinks, limited))
        return [limited is not None for limited in claimed]

    async def recover(self, most: int = 100) -> int:
        """Restart the deliveries a crashed process left in the outbox; how many were restarted."""
        stale = await self.state.take_stale(self.lease_s, self.clock(), most)
        for pending in stale:
            if pending.alert.alert_id not in self._active:
                log.info("resuming delivery of alert %s (done: %s)", pending.alert.alert_id, dict(pending.done))
                self._start(pending)
        return len(stale)

    async def drain(self) -> None:
        """Wait for every delivery under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _start(self, pending: Pending) -> None:
        self._active.add(pending.alert.alert_id)
        task = asyncio.create_task(self._deliver(pending), name=f"deliver {pending.alert.alert_id}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, pending.alert.alert_id))

    def _done(self, task: asyncio.Task[None], alert_id: str) -> None:
        self._tasks.discard(task)
        self._active.discard(alert_id)
        if not task.cancelled() and task.exception() is not None:
            # Redis or the broker failed while recording: the alert stays in the outbox, recover() retries
            log.error("delivery of alert %s stopped: %r", alert_id, task.exception())

    async def _deliver(self, pending: Pending) -> None:
        todo = [name for name in pending.sinks if name not in pending.done]
        await asyncio.gather(*(self._to_sink(pending.alert, name, pending.limited) for name in todo))
        await self.state.finish(pending.alert.alert_id)

    async def _to_sink(self, alert: Alert, name: str, limited: bool) -> None:
        if limited and name != TOPIC:
            log.info(
                "alert %s %s profile=%s over its rate limit: not sent to %s",
                alert.kind,
                alert.alert_id,
                alert.profile_id,
                name,
            )
            await self._mark(alert.alert_id, name, "rate_limited")
            return
        sink = self.sinks.get(name)
        if sink is None:
            await self._dead(alert, name, f"sink {name!r} is no longer configured")
            return
        outcome = await with_retries(lambda attempt: sink.send(alert, attempt), self.policy, self.sleep, self.jitter)
        if outcome.delivered:
            await self._mark(alert.alert_id, name, "delivered")
        else:
            await self._dead(alert, name, outcome.reason)

    async def _mark(self, alert_id: str, sink: str, status: Status) -> None:
        await self.state.mark(alert_id, sink, status)
        metrics.DELIVERIES.labels(sink, "failed" if status == "dead" else status).inc()

    async def _dead(self, alert: Alert, name: str, reason: str) -> None:
        log.warning("alert %s to %s failed: %s", alert.alert_id, name, reason)
        await self.dead_letter(alert, name, reason)
        await self._mark(alert.alert_id, name, "dead")


def make_sinks(
    routes: Routes, topic: Sink, client: httpx.AsyncClient, clock: Callable[[], float], timeout_s: float
) -> dict[str, Sink]:
    """The sink of every name ``routes`` knows, plus the topic."""
    sinks: dict[str, Sink] = {TOPIC: topic}
    for name, config in routes.sinks.items():
        if isinstance(config, WebhookConfig):
            sinks[name] = WebhookHttpSink(name, config, client, clock)
        elif isinstance(config, SlackConfig):
            sinks[name] = SlackHttpSink(name, config, client)
        elif isinstance(config, EmailConfig):
            sinks[name] = SmtpSink(name, config, timeout_s)
        elif isinstance(config, ConsoleConfig):
            sinks[name] = ConsoleSink()
    return sinks
