"""The journey runner inside the notifier's faust app: its tables, its due topic and its outputs. With no
active journey nothing is built and the notifier reads no more than its own topics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import faust
import redis.asyncio as aioredis

from crmhub.core.effects import Publish
from crmhub.core.faust_app import Guard
from crmhub.core.settings import Settings
from crmhub.core.topics import EVENTS, PROFILE_CHANGES, SEGMENTS
from schemas.outputs import Alert
from services.notifier.journeys.catalog import load_journeys
from services.notifier.journeys.runner import CUSTOMERS, ENROLLMENTS, JOURNEYS_DUE, JourneyRunner, ReadFresh
from services.notifier.journeys.sinks import JourneyOutputs

TOPICS = (EVENTS, SEGMENTS, PROFILE_CHANGES, JOURNEYS_DUE)


def build_runner(
    app: faust.App,
    settings: Settings,
    redis: aioredis.Redis,
    read_fresh: ReadFresh,
    submit: Callable[[Alert], Awaitable[None]],
    guard: Guard,
    clock: Callable[[], datetime],
) -> JourneyRunner | None:
    journeys = load_journeys(settings.journeys_file)
    if not any(j.status == "active" for j in journeys):
        return None
    tables: dict[str, Any] = {
        name: app.Table(name, default=None, partitions=settings.partitions) for name in (ENROLLMENTS, CUSTOMERS)
    }

    async def send_due(partition: int, value: bytes) -> None:
        await guard.sink.carry_out([Publish(JOURNEYS_DUE, value, partition=partition)])

    outputs = JourneyOutputs(submit, guard.sink.carry_out, redis)
    runner = JourneyRunner(journeys, tables, read_fresh, outputs, send_due, clock)

    async def rebuild() -> None:
        runner.rebuild()

    tables[ENROLLMENTS].on_recover(rebuild)
    return runner
