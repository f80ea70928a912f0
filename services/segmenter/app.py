"""segmenter wiring (faust-streaming): profile changes -> evaluate -> crm.segments.v1 + membership in Redis.

Three things move membership, one at a time (a lock), each for the partitions this worker owns:
- the agent on crm.profile-changes.v1 (each record a batch of profiles of one partition);
- the clock: every ``segment_tick_s`` the profiles whose next possible flip time has come (a Redis
  sorted set per partition) are read from SQL and evaluated again, with no new event;
- definitions: every ``segment_tick_s`` the definitions (segment file + SQL) are compared with what each
  partition's membership was computed with; a new or changed segment is evaluated over every stored
  profile (a backfill, a chunk at a time so the stream goes on, with progress in Redis), a deleted
  one publishes the exits of its members. A restart finds an unfinished backfill the same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import faust
import orjson

from crmhub.core import metrics
from crmhub.core.conditions.language import SegmentDef
from crmhub.core.effects import Effect, Publish, Tally
from crmhub.core.faust_app import Guard, add_timer, async_redis, create_app, run_worker
from crmhub.core.kafka import partition_for_key
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from crmhub.core.topics import PROFILE_CHANGES, SEGMENTS
from schemas.profile import Profile
from schemas.readmodels.profiles import ProfileReader
from services.segmenter.definitions import combine
from services.segmenter.engine import Catalog, evaluate_change
from services.segmenter.membership import Membership
from services.segmenter.rules import load_definitions
from services.segmenter.store import SegmentStore

log = logging.getLogger("crmhub.segmenter")
SERVICE = "segmenter"
BACKFILL_CHUNK = 500
DUE_BATCH = 1000
STALE_RETRIES = 10
CarryOut = Callable[[Sequence[Effect]], Awaitable[None]]  # the runtime's: returns once the records are delivered
Clock = Callable[[], datetime]
Move = tuple[str, str, str, int]  # a segment change: (segment, profile id, "entered" or "exited", profile version)


class Segmenter:
    def __init__(
        self,
        settings: Settings,
        membership: Membership,
        profiles: ProfileReader,
        segments: SegmentStore,
        carry_out: CarryOut,
        clock: Clock,
    ) -> None:
        self.partitions = settings.partitions
        self.file_defs = load_definitions(settings.segments_file)
        self.membership, self.profiles, self.segments = membership, profiles, segments
        self.carry_out, self.clock = carry_out, clock
        self.lock = asyncio.Lock()
        self.catalog = Catalog(combine(self.file_defs, segments.definitions()))
        self.backfill: asyncio.Task[None] | None = None

    async def apply_record(self, partition: int, value: bytes) -> list[str]:
        """Evaluate a record of crm.profile-changes.v1 (the caller holds the lock), decoded for the
        catalog in force: only what its segments read. Returns what :meth:`apply` does."""
        catalog = self.catalog  # the definitions may change while this record is evaluated
        return await self.apply(partition, catalog.decode(value), catalog=catalog)

    async def apply(
        self, partition: int, docs: Sequence[Any], force: Collection[str] = (), catalog: Catalog | None = None
    ) -> list[str]:
        """Evaluate profile changes of one partition (the caller holds the lock); publish entries and
        exits, record the outcomes. ``docs``: typed profiles (decoded by ``catalog``, or stored ``Profile``
        objects). Returns the ids of changes older than what was already evaluated."""
        if not docs:
            return []
        catalog = catalog or self.catalog
        latest: dict[str, Any] = {}
        for doc in docs:  # a batch may hold several changes of a profile: its last one counts
            seen = latest.get(doc.profile_id)
            if seen is None or (doc.version or 0) >= (seen.version or 0):
                latest[doc.profile_id] = doc
        priors, members = await self.membership.read(partition, list(latest))
        now = self.clock()
        outcomes, stale = [], []
        for pid, doc in latest.items():
            out = evaluate_change(catalog, doc, priors[pid], members[pid], now, force)
            if out is None:
                stale.append(pid)
            else:
                outcomes.append(out)
        await self.publish(
            [
                (name, out.profile_id, change, out.version)
                for out in outcomes
                for names, change in ((out.entered, "entered"), (out.exited, "exited"))
                for name in names
            ],
            now,
            consumed=len(docs),
        )
        await self.membership.write(partition, outcomes, len(docs))
        return stale

    async def publish(self, changes: Sequence[Move], at: datetime, consumed: int = 0) -> None:
        """Have the runtime send the changes (and count them) and wait until the broker has them all:
        membership is recorded only after its changes are published, so a crash in between publishes them
        again (at least once), never not at all."""
        await self.carry_out(publication(changes, at, consumed))

    async def stored(self, pids: list[str]) -> dict[str, Profile]:
        return await asyncio.to_thread(self.profiles.load, pids)

    async def tick(self, owned: set[int]) -> None:
        """Evaluate again the profiles whose membership time alone may have changed by now."""
        for partition in sorted(owned):
            pids = await self.membership.due(partition, self.clock().timestamp(), DUE_BATCH)
            if not pids:
                continue
            docs = await self.stored(pids)
            await self.membership.forget(partition, [pid for pid in pids if pid not in docs])
            async with self.lock:
                await self.apply(partition, list(docs.values()))  # stale ones stay due: next tick

    async def refresh_definitions(self, owned: set[int]) -> None:
        """Take up definition changes; start a backfill where a partition's membership is out of date."""
        stored = await asyncio.to_thread(self.segments.definitions)
        defs = combine(self.file_defs, stored)
        before = {d.name: d.condition for d in self.catalog.defs}
        after = {d.name: d.condition for d in defs}
        if before != after:
            changed = sorted(n for n in after if before.get(n) != after[n])
            log.info("segment definitions: new or changed %s, deleted %s", changed, sorted(set(before) - set(after)))
            self.catalog = Catalog(defs)
        if self.backfill is not None and not self.backfill.done():
            return
        work: dict[int, tuple[set[str], set[str]]] = {}
        for partition in sorted(owned):
            applied = await self.membership.applied(partition)
            pending = {d.name for d in self.catalog.defs if applied.get(d.name) != d.fingerprint}
            removed = set(applied) - self.catalog.names
            if pending or removed:
                work[partition] = (pending, removed)
        if work:
            self.backfill = asyncio.create_task(self.run_backfill(work, {d.name: d for d in self.catalog.defs}))
            self.backfill.add_done_callback(log_failure)

    async def run_backfill(self, work: dict[int, tuple[set[str], set[str]]], defs: dict[str, SegmentDef]) -> None:
        started = time.monotonic()
        for partition, (_, removed) in work.items():
            for name in sorted(removed):
                await self.remove_segment(partition, name)
        pending = {p: names for p, (names, _) in work.items() if names}
        if pending:
            await self.evaluate_stored(pending)
        for partition, (names, removed) in work.items():
            await self.membership.set_applied(partition, {n: defs[n].fingerprint for n in names}, removed)
        log.info("backfill of %s done in %.1f s", sorted(work), time.monotonic() - started)

    async def remove_segment(self, partition: int, name: str) -> None:
        """A deleted segment: publish its members' exits (this partition's) and forget them."""
        pids = await self.membership.members_of_partition(name, partition, self.partitions)
        async with self.lock:
            versions = await self.membership.versions(partition, pids)
            now = self.clock()
            await self.publish([(name, pid, "exited", versions.get(pid, 0)) for pid in pids], now)
            await self.membership.remove(partition, name, pids)
        log.info("segment %r deleted: %d exits in partition %d", name, len(pids), partition)

    async def evaluate_stored(self, pending: dict[int, set[str]]) -> None:
        """Evaluate the pending segments of each partition over every stored profile of it, a chunk at a
        time (the stream goes on in between), with progress per segment and partition."""
        total = await asyncio.to_thread(self.profiles.count)
        rows: Iterator[Profile] = self.profiles.iter_profiles(BACKFILL_CHUNK)
        done, stale = 0, []
        while chunk := await asyncio.to_thread(lambda: list(islice(rows, BACKFILL_CHUNK))):
            by_partition: dict[int, list[Profile]] = {}
            for profile in chunk:
                partition = partition_for_key(profile.profile_id.encode(), self.partitions)
                if partition in pending:
                    by_partition.setdefault(partition, []).append(profile)
            async with self.lock:
                for partition, docs in by_partition.items():
                    stale += [(partition, pid) for pid in await self.apply(partition, docs, pending[partition])]
            done += len(chunk)
            await self.report(pending, done, max(total, done), finished=False)
        for _ in range(STALE_RETRIES):  # SQL was behind the stream for these: read them again
            if not stale:
                break
            await asyncio.sleep(0.5)
            again = await self.stored([pid for _, pid in stale])
            retry, stale = stale, []
            async with self.lock:
                for partition, pid in retry:
                    if pid in again:
                        stale += [(partition, p) for p in await self.apply(partition, [again[pid]], pending[partition])]
        await self.report(pending, done, done, finished=True)

    async def report(self, pending: dict[int, set[str]], done: int, total: int, finished: bool) -> None:
        for partition, names in pending.items():
            for name in names:
                await self.membership.progress(name, partition, done, total, finished)

    async def sample_sizes(self, interval_s: float) -> None:
        """Record every segment's size at the current sample time (a multiple of the interval)."""
        now = self.clock().timestamp()
        at = datetime.fromtimestamp(now - now % interval_s, UTC)
        sizes = await self.membership.sizes(sorted(self.catalog.names))
        await asyncio.to_thread(self.segments.record_sizes, sizes, at)


def publication(changes: Sequence[Move], at: datetime, consumed: int = 0) -> list[Effect]:
    """The segment changes as records to publish, and their counters (and ``consumed`` profile changes)."""
    by_change: Counter[tuple[str, ...]] = Counter((segment, change) for segment, _, change, _ in changes)
    produced: Counter[tuple[str, ...]] = Counter()
    for (_, change), n in by_change.items():
        produced[(SERVICE, SEGMENTS, change)] += n
    effects: list[Effect] = [Publish(SEGMENTS, change_record(*c, at), c[1].encode()) for c in changes]
    effects += [Tally(metrics.PRODUCED, produced), Tally(metrics.SEGMENT_CHANGES, by_change)]
    if consumed:
        effects.append(Tally(metrics.CONSUMED, {(SERVICE, PROFILE_CHANGES, "profile"): consumed}))
    return effects


def change_record(segment: str, profile_id: str, change: str, version: int, at: datetime) -> bytes:
    """A :class:`~schemas.outputs.SegmentChange` as JSON, byte for byte what pydantic writes, by orjson
    from a dict: a tenth of the model's cost (a new profile enters a dozen segments)."""
    doc = {"segment": segment, "profile_id": profile_id, "change": change, "at": at, "profile_version": version}
    return orjson.dumps(doc, option=orjson.OPT_UTC_Z)


def log_failure(task: asyncio.Task[None]) -> None:
    """A backfill that failed is logged; the next tick finds the partitions still out of date and retries."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("backfill failed, retried at the next tick: %r", exc, exc_info=exc)


def build(settings: Settings, clock: Clock = lambda: datetime.now(UTC)) -> faust.App:
    app = create_app("crmhub-segmenter", settings)  # no tables: membership lives in Redis
    changes_topic = app.topic(PROFILE_CHANGES, key_type=bytes, value_type=bytes)
    engine = make_engine(settings.sql_url)

    redis_client = async_redis(settings)
    membership = Membership(redis_client)
    guard = Guard(app, SERVICE, redis_client, clock)
    seg = Segmenter(settings, membership, ProfileReader(engine), SegmentStore(engine), guard.sink.carry_out, clock)
    log.info("segmenter evaluating %d segments: %s", len(seg.catalog.defs), ", ".join(seg.catalog.names))

    add_agent(app, changes_topic, seg, guard)
    add_timers(app, seg, settings)
    return app


def add_agent(app: faust.App, changes_topic: Any, seg: Segmenter, guard: Guard) -> None:
    """The agent on the profile changes: each record evaluated under the runtime's error rules."""

    async def evaluate(partition: int, value: bytes) -> None:
        async with seg.lock:
            await seg.apply_record(partition, value)

    @app.agent(changes_topic)
    async def evaluate_profiles(stream: Any) -> None:
        async for event in stream.events():
            started = time.monotonic()
            await guard.process(event.message, functools.partial(evaluate, event.message.partition, event.value))
            metrics.BATCH_SECONDS.labels(SERVICE).observe(time.monotonic() - started)


def add_timers(app: faust.App, seg: Segmenter, settings: Settings) -> None:
    """The clock and definitions tick, and the size history, for the partitions this worker owns."""

    async def clock_and_definitions() -> None:
        partitions = {tp.partition for tp in app.consumer.assignment() if tp.topic == PROFILE_CHANGES}
        try:
            if partitions:
                await seg.refresh_definitions(partitions)
                await seg.tick(partitions)
        except Exception:  # a Redis or SQL blip: the next tick tries again; the stream goes on
            log.exception("segment tick failed; trying again at the next one")

    async def size_history() -> None:
        await seg.sample_sizes(settings.segment_history_s)

    add_timer(app, settings.segment_tick_s, clock_and_definitions)
    add_timer(app, settings.segment_history_s, size_history)


def main() -> None:
    settings = Settings()
    run_worker(build, settings, "segmenter")
