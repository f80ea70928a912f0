"""Where the journey runner's outputs go: messages to the delivery outbox (as alerts), profile updates to
``crm.events.v1`` (keyed by the profile, as ingest forwards events), counters and histories to Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from crmhub.core.effects import Effect, Publish
from crmhub.core.topics import EVENTS
from schemas.outputs import Alert
from schemas.readmodels.journeys import HISTORY_CAP, counts_key, history_key, stored_amount
from services.notifier.journeys.outputs import Tally

CarryOut = Callable[[Sequence[Effect]], Awaitable[None]]


class JourneyOutputs:
    def __init__(self, submit: Callable[[Alert], Awaitable[None]], carry_out: CarryOut, redis: aioredis.Redis) -> None:
        self.submit, self.carry_out, self.redis = submit, carry_out, redis

    async def send(self, alert: Alert) -> None:
        await self.submit(alert)

    async def update(self, profile_id: str, event: bytes) -> None:
        await self.carry_out([Publish(EVENTS, event, profile_id.encode())])

    async def record(self, counts: Tally, history: Mapping[str, list[dict[str, Any]]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for (journey, step, counter), amount in counts.items():
            pipe.hincrby(counts_key(journey), f"{step}|{counter}", stored_amount(counter, amount))
        for profile_id, entries in history.items():
            pipe.lpush(history_key(profile_id), *(orjson.dumps(e) for e in entries))
            pipe.ltrim(history_key(profile_id), 0, HISTORY_CAP - 1)
        await pipe.execute()
