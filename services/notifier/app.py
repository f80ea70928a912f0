"""notifier wiring (faust-streaming): the adapter that runs the pure state machine (``machine.py``) on the
profile changes and carries out its effects.

Timers live in two faust tables (``state.py``), changelogged so a restarted notifier recovers them, and
hold wall-clock due times. faust lets only stream processing write a table, and writes each entry to the
changelog partition of the record being processed. So due timers are fired through the stream too:

1. A faust timer (every ``TICK_S``) takes the due entries out of an in-memory index (``timers.py``) and
   sends one small record per partition to the internal topic ``crmhub-notifier-due``: the ids of the
   profiles with something due, to the partition their entries were written on (the table documents
   record it). It writes nothing.
2. The notifier's one agent reads that topic and ``crm.profile-changes.v1`` (co-partitioned with the
   tables' changelogs). A due record reads what the timers are re-checked against (the profile service's
   cached profile, the segmenter's segments, the erasure marker: ``read_fresh``), runs ``on_due`` and
   writes the fired timers like any other table write, on the partition the entry lives on.

One agent for both topics means one profile's timers are changed by one record at a time: no timer
callback can interleave with a profile change, so the state a step starts from is the state it replaces.
Records that are lost on the way are not a loss: the entry stays due in its table, and the tick asks for
it again until firing it changes it (``RESEND_S``); the index is rebuilt from the tables after every
recovery. A due record that arrives at another worker after a
rebalance is handled there, from that worker's (recovered) table. Earlier versions wrote back from the
timer with ``table.data[...]`` and ``send_changelog``, re-implementing what faust does for a stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, get_args

import faust
import orjson
import redis.asyncio as aioredis
from faust.types import TableT

from crmhub.core import metrics
from crmhub.core.effects import Count, Publish, Tally
from crmhub.core.faust_app import Guard, add_timer, create_app, run_worker
from crmhub.core.setting_values import parse_complaint_sla
from crmhub.core.settings import Settings
from crmhub.core.topics import ERASURES, PROFILE_CHANGES, SEGMENTS
from schemas.outputs import Alert
from services.notifier.abandonment import Kind
from services.notifier.alerting import SERVICE, AlertSubmitter, Clock, build_dispatcher
from services.notifier.audience_sync import AudienceSyncer, build_syncer
from services.notifier.complaints import SlaPolicy
from services.notifier.customers import read_fresh, sql_loader
from services.notifier.delivery import Dispatcher
from services.notifier.journeys.runner import JourneyRunner
from services.notifier.journeys.wiring import TOPICS as JOURNEY_TOPICS
from services.notifier.journeys.wiring import build_runner
from services.notifier.machine import ClearTimer, Effect, Fresh, RaiseAlert, Rules, SetTimer, on_due, on_profile
from services.notifier.state import (
    KINDS,
    ComplaintClock,
    Entry,
    ProfileTimers,
    TableName,
    Wait,
    profile_of_key,
    wait_key,
)
from services.notifier.timers import DueIndex
from services.notifier.view import ProfileDoc

log = logging.getLogger("crmhub.notifier")
DUE_TOPIC = "crmhub-notifier-due"  # internal: profile ids with timers due, per partition
TICK_S = 0.25
RETRY_S = 1.0  # due timers whose firing failed are tried again this much later
RESEND_S = 10.0  # due timers still due this much after they were asked for are asked for again
RECOVER_S = 15.0

Tables = Mapping[TableName, TableT[Any, Any]]
ReadFresh = Callable[[Sequence[str]], Awaitable[dict[str, Fresh]]]
SendDue = Callable[[int, bytes], Awaitable[None]]


def rules_from(settings: Settings) -> Rules:
    delays: dict[Kind, timedelta] = {"cart_abandoned": timedelta(seconds=settings.abandonment_delay_s)}
    if settings.browse_abandonment_delay_s:  # 0: browse abandonment is off
        delays["browse_abandoned"] = timedelta(seconds=settings.browse_abandonment_delay_s)
    sla = SlaPolicy(parse_complaint_sla(settings.complaint_sla), settings.complaint_vip_spend)
    return Rules(delays, sla, timedelta(seconds=settings.payment_failure_window_s))


class Notifier:
    """Reads a profile's timers from the tables, runs the state machine, carries out its effects."""

    def __init__(
        self,
        rules: Rules,
        tables: Tables,
        read_fresh: ReadFresh,
        raise_alert: Callable[[Alert], Awaitable[None]],
        send_due: SendDue,
        clock: Clock,
    ) -> None:
        self.rules, self.tables, self.clock = rules, tables, clock
        self.read_fresh, self.raise_alert, self.send_due = read_fresh, raise_alert, send_due
        # which entries come due when, so a tick need not scan the tables; rebuilt after every recovery
        self.indexes: dict[TableName, DueIndex] = {name: DueIndex() for name in tables}
        self.seen = 0  # profile changes handled since the counter was last flushed

    async def handle(self, topic: str, partition: int, doc: Any) -> None:
        """One record of the agent, decoded: a batch of profile changes, or the profile ids with timers due."""
        if topic == DUE_TOPIC:
            await self.fire(partition, doc)
            return
        started = time.monotonic()
        for change in doc:  # changes of profiles that hash to this partition (see segmenter)
            await self.changed(partition, change)
        metrics.BATCH_SECONDS.labels(SERVICE).observe(time.monotonic() - started)

    async def changed(self, partition: int, change: ProfileDoc) -> None:
        self.seen += 1
        _, effects = on_profile(self.rules, self.timers_of(change["profile_id"]), change, self.clock())
        await self.carry_out(effects, partition)

    async def fire(self, partition: int, profile_ids: Sequence[str]) -> None:
        now = self.clock()
        try:
            fresh = await self.read_fresh(profile_ids)
            for pid in profile_ids:
                _, effects = on_due(self.rules, self.timers_of(pid), fresh[pid], now)
                await self.carry_out(effects, partition)
        except Exception:  # Redis away for a moment: what is still due is tried again shortly
            log.exception("could not fire the due timers")
            self.retry(profile_ids, now)

    def timers_of(self, profile_id: str) -> ProfileTimers:
        waits = self.tables["abandonment"]
        found = {kind: waits.get(wait_key(kind, profile_id)) for kind in KINDS}
        clock = self.tables["complaints"].get(profile_id)
        return ProfileTimers(
            profile_id,
            {kind: Wait.from_json(doc) for kind, doc in found.items() if doc is not None},
            ComplaintClock.from_json(profile_id, clock) if clock is not None else None,
        )

    async def carry_out(self, effects: Iterable[Effect], partition: int) -> None:
        """In order; table writes go to the partition of the record being processed (faust's rule)."""
        for effect in effects:
            match effect:
                case RaiseAlert(alert):
                    await self.raise_alert(alert)
                case SetTimer(entry):
                    self.write(entry, partition)
                case ClearTimer(table, key):
                    del self.tables[table][key]

    def write(self, entry: Entry, partition: int) -> None:
        self.tables[entry.table][entry.key] = {**entry.to_json(), "partition": partition}
        self.indexes[entry.table].add(entry.key, entry.due)

    def retry(self, profile_ids: Iterable[str], now: datetime) -> None:
        at = now.timestamp() + RETRY_S
        for pid in profile_ids:
            self.indexes["complaints"].add(pid, at)
            for kind in KINDS:
                self.indexes["abandonment"].add(wait_key(kind, pid), at)

    async def tick(self) -> None:
        """Ask for the due timers to be fired: one record of profile ids per partition."""
        now = self.clock()
        for partition, profile_ids in sorted(self.due(now.timestamp()).items()):
            try:
                await self.send_due(partition, orjson.dumps(profile_ids))
            except Exception:  # the broker away for a moment: asked again shortly
                log.exception("could not ask for the due timers of partition %d to be fired", partition)
                self.retry(profile_ids, now)
        for name, index in self.indexes.items():
            if index.needs_rebuild(len(self.tables[name])):
                index.rebuild(self.tables[name].items())

    def due(self, now: float) -> dict[int, list[str]]:
        """The profiles with entries due at ``now``, by the partition their entries were written on. Each
        entry is asked for again ``RESEND_S`` later: by then firing it has changed it (and the index skips
        it), unless its due record was lost on the way or its firing was put off (a fresher profile said
        "not yet" and the change that says why has not come)."""
        found: dict[int, set[str]] = {}
        for name, index in self.indexes.items():
            for key, doc in index.pop_due(now, self.tables[name].get):
                found.setdefault(doc["partition"], set()).add(profile_of_key(name, key))
                index.add(key, now + RESEND_S)
        return {partition: sorted(pids) for partition, pids in found.items()}

    async def rebuild(self, name: TableName) -> None:
        """After a recovery: index the table's entries again (a restart or rebalance brought ones it never saw)."""
        self.indexes[name].rebuild(self.tables[name].items())


def build(settings: Settings, clock: Clock = lambda: datetime.now(UTC)) -> faust.App:
    app = create_app("crmhub-notifier", settings)
    redis = aioredis.Redis.from_url(settings.redis_dsn)
    tables: Tables = {
        name: app.Table(name, default=None, partitions=settings.partitions) for name in get_args(TableName)
    }
    dispatcher = build_dispatcher(app, settings, redis, clock)
    guard = Guard(app, SERVICE, redis, clock)

    async def send_due(partition: int, value: bytes) -> None:
        await guard.sink.carry_out([Publish(DUE_TOPIC, value, partition=partition)])

    fresh = partial(read_fresh, redis, sql_loader(settings))
    submit = AlertSubmitter(dispatcher, redis)
    notifier = Notifier(rules_from(settings), tables, fresh, submit, send_due, clock)
    for name, table in tables.items():
        table.on_recover(partial(notifier.rebuild, name))
    runner = build_runner(app, settings, redis, fresh, submit, guard, clock)
    wire(app, settings, notifier, runner, build_syncer(app, settings, redis, fresh), dispatcher, guard)
    return app


async def route(
    notifier: Notifier, runner: JourneyRunner, syncer: AudienceSyncer, topic: str, partition: int, value: bytes
) -> None:
    """A record to the notifier's rules, the journeys, or both (a profile change); a segment change and an
    erasure to the audience syncs too. Decoded once for all of them (a record of profile changes holds up
    to 500 whole profiles)."""
    doc = orjson.loads(value)
    if topic in (PROFILE_CHANGES, DUE_TOPIC):
        await notifier.handle(topic, partition, doc)
    if topic in JOURNEY_TOPICS:
        await runner.handle(topic, partition, doc)
    if topic == SEGMENTS:
        await syncer.on_change(doc)
    elif topic == ERASURES:
        await syncer.forget(doc["profile_id"])


def wire(
    app: faust.App,
    settings: Settings,
    notifier: Notifier,
    runner: JourneyRunner,
    syncer: AudienceSyncer,
    dispatcher: Dispatcher,
    guard: Guard,
) -> None:
    """One agent on the profile changes, the due records and the journeys' inputs (each record retried or
    dead-lettered, never the end of the agent), so a profile is changed by one record at a time; the timers."""
    names = {PROFILE_CHANGES, DUE_TOPIC, *JOURNEY_TOPICS}
    # internal: faust creates the due topics (the others exist) with the tables' partitions
    topics = app.topic(*sorted(names), internal=True, partitions=settings.partitions, key_type=bytes, value_type=bytes)

    @app.agent(topics)
    async def notify(stream: Any) -> None:
        async for event in stream.events():
            message, value = event.message, event.value
            await guard.process(
                message, partial(route, notifier, runner, syncer, message.topic, message.partition, value)
            )

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

    add_timer(app, TICK_S, notifier.tick)
    add_timer(app, TICK_S, runner.tick)
    add_timer(app, RECOVER_S, recover_deliveries)
    add_timer(app, 1.0, count_seen)


def main() -> None:
    settings = Settings()
    run_worker(build, settings, "notifier")
