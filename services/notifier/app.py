"""notifier wiring (faust-streaming): one agent reads the profile changes, events, segment changes,
erasures and the journeys' due records, and hands each record to

- the journey runner (``journeys/runner.py``): every journey, the alerts that wait among them (cart and
  browse abandonment, the complaint SLA and its escalations: ``journeys/journeys.yaml``), with its waits
  in faust tables that survive restarts;
- the instant alerts (``profile_alerts.py``: failed payments, deliveries, unhappy feedback), raised with
  the profile change that calls for them;
- the audience syncs (segment changes, erasures).

One agent for all of them means one profile's journeys are changed by one record at a time. Alerts and
journey messages go through the delivery outbox (``delivery.py``), which sends each id once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import faust
import orjson

from crmhub.core import metrics
from crmhub.core.effects import Count, Tally
from crmhub.core.faust_app import Guard, add_timer, async_redis, create_app, run_worker
from crmhub.core.settings import Settings
from crmhub.core.topics import ERASURES, PROFILE_CHANGES, SEGMENTS
from schemas.outputs import Alert
from schemas.readmodels.profiles import full_doc
from services.notifier.alerting import SERVICE, AlertSubmitter, Clock, build_dispatcher
from services.notifier.audience_sync import AudienceSyncer, build_syncer
from services.notifier.customers import read_fresh, sql_loader
from services.notifier.delivery import Dispatcher
from services.notifier.journeys.runner import Input, JourneyRunner
from services.notifier.journeys.wiring import TOPICS as JOURNEY_TOPICS
from services.notifier.journeys.wiring import build_runner
from services.notifier.profile_alerts import profile_alerts
from services.notifier.view import ProfileDoc

log = logging.getLogger("crmhub.notifier")
TICK_S = 0.25
BATCH, BATCH_WAIT_S = 100, 0.02
RECOVER_S = 15.0


class Notifier:
    """Raises the alerts a profile change calls for at once (``profile_alerts.py``)."""

    def __init__(
        self, payment_window: timedelta, raise_alerts: Callable[[Sequence[Alert]], Awaitable[None]], clock: Clock
    ) -> None:
        self.payment_window, self.raise_alerts, self.clock = payment_window, raise_alerts, clock
        self.seen = 0  # profile changes handled since the counter was last flushed

    async def handle(self, changes: Sequence[ProfileDoc]) -> None:
        """A record of profile changes (of profiles that hash to this partition, see segmenter), decoded."""
        started, now = time.monotonic(), self.clock()
        alerts = [alert for change in changes for alert in profile_alerts(change, self.payment_window, now)]
        if alerts:
            await self.raise_alerts(alerts)
        self.seen += len(changes)
        metrics.BATCH_SECONDS.labels(SERVICE).observe(time.monotonic() - started)


def build(settings: Settings, clock: Clock = lambda: datetime.now(UTC)) -> faust.App:
    app = create_app("crmhub-notifier", settings)
    redis = async_redis(settings)
    dispatcher = build_dispatcher(app, settings, redis, clock)
    guard = Guard(app, SERVICE, redis, clock)
    fresh = partial(read_fresh, redis, sql_loader(settings))
    submit = AlertSubmitter(dispatcher, redis)
    notifier = Notifier(timedelta(seconds=settings.payment_failure_window_s), submit, clock)
    runner = build_runner(app, settings, redis, fresh, submit, guard, clock)
    wire(app, settings, notifier, runner, build_syncer(app, settings, redis, fresh), dispatcher, guard)
    return app


async def route(notifier: Notifier, runner: JourneyRunner, syncer: AudienceSyncer, events: Sequence[Any]) -> None:
    """Records (faust events) to the journeys, all at once; the profile changes among them to the
    notifier's instant alerts too; segment changes and erasures to the audience syncs too. Each decoded once
    for all of them (a record of profile changes holds up to 500 profiles)."""
    inputs = [Input(e.message.topic, e.message.partition, decode(e.message.topic, e.value), e) for e in events]
    await notifier.handle([change for i in inputs if i.topic == PROFILE_CHANGES for change in i.doc])
    await runner.handle([i for i in inputs if i.topic in JOURNEY_TOPICS])
    for i in inputs:
        if i.topic == SEGMENTS:
            await syncer.on_change(i.doc)
        elif i.topic == ERASURES:
            await syncer.forget(i.doc["profile_id"])


def decode(topic: str, value: bytes) -> Any:
    """A record's JSON; a record of profile changes with every field of each profile (:func:`full_doc`)."""
    doc = orjson.loads(value)
    return [full_doc(change) for change in doc] if topic == PROFILE_CHANGES else doc


def wire(
    app: faust.App,
    settings: Settings,
    notifier: Notifier,
    runner: JourneyRunner,
    syncer: AudienceSyncer,
    dispatcher: Dispatcher,
    guard: Guard,
) -> None:
    """One agent on the journeys' inputs (the profile changes among them), so a profile's journeys change
    by one record at a time, taken in batches of up to :data:`BATCH` records (those at hand, waiting at most
    :data:`BATCH_WAIT_S` for more): a batch's customers are read, and its messages claimed, in one round
    trip each. Retried or dead-lettered, never the end of the agent. The timers."""
    names = set(JOURNEY_TOPICS)
    # internal: faust creates the due topics (the others exist) with the tables' partitions
    topics = app.topic(*sorted(names), internal=True, partitions=settings.partitions, key_type=bytes, value_type=bytes)

    handle = partial(route, notifier, runner, syncer)

    @app.agent(topics)
    async def notify(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=BATCH_WAIT_S):
            await guard.process_batch(events, handle)

    async def recover_deliveries() -> None:
        try:
            await dispatcher.recover()  # deliveries a crashed process left unfinished
        except Exception:  # Redis away for a moment: the outbox waits for the next round
            log.exception("could not recover unfinished alert deliveries")

    async def count_seen() -> None:
        if notifier.seen:
            n = notifier.seen
            consumed = Tally(metrics.CONSUMED, {(SERVICE, PROFILE_CHANGES, "profile"): n})
            await guard.sink.carry_out([Count({"notifier.profiles": n}), consumed])
            notifier.seen -= n  # counted: with Redis away they wait for the next round

    add_timer(app, TICK_S, runner.tick)
    add_timer(app, RECOVER_S, recover_deliveries)
    add_timer(app, 1.0, count_seen)


def main() -> None:
    settings = Settings()
    run_worker(build, settings, "notifier")
