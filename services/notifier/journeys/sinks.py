"""Where the journey runner's outputs go: messages to the delivery outbox (as alerts), profile updates to
``crm.events.v1`` (keyed by the profile, as ingest forwards events), counters and histories to Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import orjson
import redis.asyncio as aioredis

from crmhub.core.effects import Effect, Publish
from crmhub.core.topics import EVENTS
from schemas.outputs import Alert
from schemas.readmodels.journeys import HISTORY_CAP, counts_key, history_key, stored_amount
from services.notifier.journeys.outputs import Held

CarryOut = Callable[[Sequence[Effect]], Awaitable[None]]


class JourneyOutputs:
    """A record's effects at once: its messages claimed in one round trip, its profile updates published,
    its counters and histories in one pipeline."""

    def __init__(
        self, submit: Callable[[Sequence[Alert]], Awaitable[None]], carry_out: CarryOut, redis: aioredis.Redis
    ) -> None:
        self.submit, self.publish, self.redis = submit, carry_out, redis

    async def carry_out(self, held: Held) -> None:
        updates = [Publish(EVENTS, event, profile_id.encode()) for profile_id, event in held.updates]
        await asyncio.gather(self.submit(held.alerts), self.publish(updates), self.record(held))

    async def record(self, held: Held) -> None:
        if not held.counts and not held.histories:
            return
        pipe = self.redis.pipeline(transaction=False)
        for (journey, step, counter), amount in held.counts.items():
            pipe.hincrby(counts_key(journey), f"{step}|{counter}", stored_amount(counter, amount))
        for profile_id, entries in held.histories.items():
            pipe.lpush(history_key(profile_id), *(orjson.dumps(e) for e in entries))
            pipe.ltrim(history_key(profile_id), 0, HISTORY_CAP - 1)
        await pipe.execute()
