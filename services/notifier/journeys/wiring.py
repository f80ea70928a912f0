"""The journey runner inside the notifier's faust app: its tables, its due topic, its outputs, and the
journeys in force (file and SQL) read again as they change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import faust
import redis.asyncio as aioredis

from crmhub.core.effects import Publish
from crmhub.core.faust_app import EventScope, Guard, add_timer
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from crmhub.core.topics import ERASURES, EVENTS, PROFILE_CHANGES, SEGMENTS
from schemas.outputs import Alert
from services.notifier.journeys.catalog import JourneyError, current_journeys
from services.notifier.journeys.runner import CUSTOMERS, ENROLLMENTS, JOURNEYS_DUE, JourneyRunner, ReadFresh
from services.notifier.journeys.sinks import JourneyOutputs
from services.notifier.journeys.store import JourneyStore

log = logging.getLogger("crmhub.notifier.journeys")

TOPICS = (EVENTS, SEGMENTS, PROFILE_CHANGES, JOURNEYS_DUE, ERASURES)


def build_runner(
    app: faust.App,
    settings: Settings,
    redis: aioredis.Redis,
    read_fresh: ReadFresh,
    submit: Callable[[Sequence[Alert]], Awaitable[None]],
    guard: Guard,
    clock: Callable[[], datetime],
) -> JourneyRunner:
    """The runner, its tables and its due topic. Built whether or not a journey is active: one made through
    the API later runs without a restart (the definitions are read again every ``segment_tick_s``)."""
    store = JourneyStore(make_engine(settings.sql_url, migrate=False))
    journeys, _ = current_journeys(settings, store)
    tables: dict[str, Any] = {
        # values held as JSON bytes (staging.Staged encodes and decodes them): compact
        name: app.Table(name, default=None, partitions=settings.partitions, value_type=bytes)
        for name in (ENROLLMENTS, CUSTOMERS)
    }

    async def send_due(partition: int, value: bytes) -> None:
        await guard.sink.carry_out([Publish(JOURNEYS_DUE, value, partition=partition)])

    outputs = JourneyOutputs(submit, guard.sink.carry_out, redis)
    runner = JourneyRunner(journeys, tables, read_fresh, outputs, send_due, clock, EventScope())

    async def rebuild() -> None:
        runner.rebuild()

    async def refresh() -> None:
        try:
            found, _ = await asyncio.to_thread(current_journeys, settings, store)
        except JourneyError as exc:  # the file edited into an error: the journeys in force go on
            log.error("journeys not reloaded: %s", exc)
            return
        runner.use(found)

    tables[ENROLLMENTS].on_recover(rebuild)
    add_timer(app, settings.segment_tick_s, refresh)
    return runner
