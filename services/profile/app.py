"""profile wiring: crm.events.v1 -> fold and merge -> crm.profiles.v1 + SQL (with offsets) + Redis cache."""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from pydantic import ValidationError

from crmhub.core import deadletters, metrics
from crmhub.core import kafka as kafka_io
from crmhub.core.effects import (
    Commit,
    Count,
    DeadLetter,
    Effect,
    Latency,
    Outcome,
    Publish,
    PublishBatch,
    RedisWrite,
    Tally,
)
from crmhub.core.runtime import Every, KafkaSource, Runtime, start_service
from crmhub.core.sink import Sink
from crmhub.core.sql import make_engine
from crmhub.core.topics import EVENTS, PROFILE_CHANGES, PROFILES
from schemas.events import Event, ProfileMerged, decode_event_batch
from schemas.profile import Profile
from schemas.readmodels.catalog import CatalogReader
from schemas.readmodels.profiles import ProfileCache, profile_doc, whole_doc
from services.profile.facets.products import products_bought, redate
from services.profile.merge import fold_batch, survivor_of
from services.profile.policy import DEFAULT_RULES, FoldRules
from services.profile.rebuild import is_new_broker, republish_recent
from services.profile.reports import report_deltas
from services.profile.rfm import base_thresholds, with_rfm
from services.profile.store import Expect, Fenced, ProfileStore, StaleProfiles

log = logging.getLogger("crmhub.profile")
GROUP_ID = "crmhub-profile"
SERVICE = "profile"
# the most event JSON one batch folds (~1,000 events; a batch costs ~30x its JSON at its peak): a catch-up's
# full records would make it 30,000
BATCH_BYTES = 512 * 1024
RFM_CHUNK = 1000  # refreshed profiles saved and published together
MAX_ATTEMPTS = 5  # folds of one batch when other instances keep writing its profiles meanwhile


def dead_letter(record: ConsumerRecord, reason: str, now: datetime) -> bytes:
    return deadletters.build(
        reason=reason,
        location="body",
        source="crm",
        original=bytes(record.value or b""),
        received_at=now,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )


def metered(routed: list[tuple[str, Event]], counts: Counter[str], whole_profiles: bool) -> list[Effect]:
    """The batch's flow counters and metrics; latency from receipt to the effects, per event.
    ``whole_profiles``: the changes went to crm.profiles.v1 too."""
    changed = counts["profile.updated"]
    produced: dict[tuple[str, ...], int] = {
        (SERVICE, PROFILES, "profile"): changed if whole_profiles else 0,
        (SERVICE, PROFILE_CHANGES, "profile"): changed,
    }
    return [
        Count(counts),
        Tally(metrics.CONSUMED, metrics.count_types(SERVICE, EVENTS, (event.type for _, event in routed))),
        Tally(metrics.PRODUCED, produced),
        Tally(metrics.MERGES, {(SERVICE,): sum(isinstance(event, ProfileMerged) for _, event in routed)}, touch=True),
        Latency([event.received_at for _, event in routed]),
    ]


def named_profiles(routed: list[tuple[str, Event]]) -> set[str]:
    """Every profile id the events name: the ones they are stamped with and the ones merges absorb."""
    named = {pid for pid, _ in routed}
    named.update(event.properties.absorbed_id for _, event in routed if isinstance(event, ProfileMerged))
    return named


def new_identifiers(before: Profile | None, after: Profile) -> list[tuple[str, str]]:
    """Identifiers ``after`` holds that ``before`` did not: the only ones the store must write."""
    old = {(kind, v) for kind, values in before.identifiers.items() for v in values} if before else set()
    return [(kind, v) for kind, values in after.identifiers.items() for v in values if (kind, v) not in old]


def changed_links(current: dict[str, Profile], changed: list[Profile]) -> list[tuple[str, str, str]]:
    """The (kind, value, profile id) identifiers the changed profiles hold that they did not before."""
    return [(kind, v, p.profile_id) for p in changed for kind, v in new_identifiers(current.get(p.profile_id), p)]


def timeline_of(
    current: dict[str, Profile], changed: list[Profile], kept: list[tuple[str, Event]]
) -> tuple[list[tuple[str, Event]], dict[str, str]]:
    """The timeline entries of the events (on their surviving profile) and where merged profiles moved."""
    after = {**current, **{p.profile_id: p for p in changed}}
    timeline = [(survivor_of(after, pid), event) for pid, event in kept]
    return timeline, {p.profile_id: survivor_of(after, p.profile_id) for p in changed if p.merged_into}


class ProfileWorker:
    """The profile service's handler and its state: the store (SQL) and the cache of hot profiles."""

    def __init__(
        self,
        store: ProfileStore,
        cache: ProfileCache,
        sink: Sink,
        incarnation: str,
        rules: FoldRules = DEFAULT_RULES,
        publish_profiles: bool = True,
    ) -> None:
        self.store = store
        self.publish_profiles = publish_profiles  # whole documents on crm.profiles.v1 too (not on Tansu)
        self.rules = rules
        self.cache = cache
        self.catalog = CatalogReader(cache.redis)  # the catalogue ingest keeps beside the cache
        self.catalog_seq = 0  # the catalogue's change count when its changes were last applied
        self.sink = sink  # carries out the publishes the store's transaction waits for
        self.incarnation = incarnation
        # per partition, the next offset the store holds as this instance last saw it (set when the
        # consumer seeks there): the save claims it, so a partition another instance took is not written
        self.positions: dict[tuple[str, int], int | None] = {}
        # seek the consumer back to the stored offsets of these partitions (after a fenced save)
        self.rewind: Callable[[set[tuple[str, int]]], None] = lambda partitions: None

    def resume(self, consumer: KafkaConsumer, partitions: set[tuple[str, int]]) -> dict[int, int]:
        """Seek ``partitions`` to the offsets stored with the profiles (the beginning where none is);
        the stored offsets."""
        stored = self.store.offsets(GROUP_ID, EVENTS, self.incarnation)
        for topic, part in sorted(partitions):
            tp = TopicPartition(topic, part)
            if part in stored:
                consumer.seek(tp, stored[part])
            else:
                consumer.seek_to_beginning(tp)
            self.positions[(topic, part)] = stored.get(part)
        return stored

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        for tp in partitions:
            self.positions.pop(tp, None)

    def handle(self, records: list[ConsumerRecord], now: datetime) -> Outcome:
        routed, next_offsets, dead = self.sort(records, now)
        counts: Counter[str] = Counter()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                docs = self._fold_and_save(routed, dead, next_offsets, counts, from_cache=attempt == 1)
                break
            except StaleProfiles as exc:  # another instance wrote some of them: fold again from SQL
                counts["profile.conflicts"] += 1
                if attempt == MAX_ATTEMPTS:
                    raise  # retryable: the runtime tries the batch again after a pause
                log.info("batch folded again (attempt %d): %s", attempt + 1, exc)
            except Fenced as exc:  # the partitions are another instance's now: nothing was written
                log.warning("batch dropped: %s", exc)
                self.rewind(set(next_offsets))
                return Outcome([Count({"profile.fenced": 1})], Commit.ASYNC)
        # Kafka commits are for lag monitoring only: the offsets that count are in SQL with the profiles
        put = RedisWrite(functools.partial(self.cache.put_many, docs=docs))
        return Outcome([put, *metered(routed, counts, self.publish_profiles)], Commit.ASYNC)

    def sort(
        self, records: list[ConsumerRecord], now: datetime
    ) -> tuple[list[tuple[str, Event]], dict[tuple[str, int], int], list[DeadLetter]]:
        """The batch's events by profile, the next offset of each partition, and its dead letters."""
        routed: list[tuple[str, Event]] = []
        next_offsets: dict[tuple[str, int], int] = {}
        dead: list[DeadLetter] = []
        for record in records:
            next_offsets[(record.topic, record.partition)] = record.offset + 1
            try:
                events = decode_event_batch(record.value)
            except ValidationError as exc:
                dead.append(
                    DeadLetter(dead_letter(record, str(exc.errors(include_url=False)[0]["msg"]), now), "invalid body")
                )
                continue
            for event in events:
                if event.profile_id is None:
                    reason = f"event {event.event_id} has no profile_id"
                    dead.append(DeadLetter(dead_letter(record, reason, now), "no profile_id"))
                else:
                    routed.append((event.profile_id, event))
        return routed, next_offsets, dead

    def _fold_and_save(
        self,
        routed: list[tuple[str, Event]],
        dead: list[DeadLetter],
        next_offsets: dict[tuple[str, int], int],
        counts: Counter[str],
        from_cache: bool,
    ) -> dict[str, bytes]:
        """Fold the batch into the profiles it names and save them with what they add to the report
        roll-ups, guarded by the offsets and versions read (publishing inside the save's transaction);
        the published docs."""
        current = self._load(named_profiles(routed), from_cache)
        versions: dict[str, int | None] = {pid: p.version for pid, p in current.items()}  # before the fold
        kept, suppressed = self._without_erased(current, routed)
        kept, refolded = self._not_folded_yet(kept)
        bought = products_bought(event for _, event in kept)
        rules = self.rules.with_catalog(self.catalog.products(bought)) if bought else self.rules
        changed = list(fold_batch(current, kept, rules).values())
        docs = {p.profile_id: profile_doc(p) for p in changed}
        timeline, moved = timeline_of(current, changed, kept)
        self.store.save(
            changed,
            changed_links(current, changed),
            GROUP_ID,
            self.incarnation,
            next_offsets,
            timeline,
            moved,
            expect=Expect({tp: self.positions.get(tp) for tp in next_offsets}, versions),
            before_write=functools.partial(self._publish, docs, dead),
            docs=docs,
            inputs=[event.input_seq for _, event in kept if event.input_seq is not None],
            reports=report_deltas(current, changed),
        )
        self.positions.update(next_offsets)
        counts.update({"profile.events": len(kept), "profile.suppressed": suppressed})
        counts.update({"profile.refolds_skipped": refolded, "profile.updated": len(changed)})
        counts["profile.deadletters"] += len(dead)
        return docs

    def _publish(self, docs: dict[str, bytes], dead: Sequence[DeadLetter]) -> None:
        """Publish the changed profiles' ``docs`` (and dead letters) and drop their stale cache entries.

        Publish first, then commit: a crash in between replays the batch, which folds to the same
        profiles (same versions), so downstream sees a duplicate at worst, never a gap."""
        whole = docs.items() if self.publish_profiles else ()
        effects: list[Effect] = [Publish(PROFILES, whole_doc(doc), pid.encode()) for pid, doc in whole]
        effects += [PublishBatch(PROFILE_CHANGES, list(docs.items())), *dead]
        self.sink.carry_out(effects)
        self.cache.invalidate(docs)

    def refresh_rfm(self, owned: set[int], now: datetime) -> int:
        """RFM scores of the profiles of the ``owned`` partitions against the whole base (two passes over
        SQL, between batches, so no fold runs meanwhile); publish and save those whose scores changed, a
        chunk at a time (memory stays flat however big the base: holding every changed profile at once
        took 200 MB at 20,000 customers). Other instances refresh the profiles of their partitions, so
        none writes a profile it does not own. Returns how many changed."""
        thresholds = base_thresholds(self.store.iter_profiles(), now)
        changed = (
            refreshed
            for p in self.store.iter_profiles()
            if self._owns(p, owned) and (refreshed := with_rfm(p, thresholds, now)) is not None
        )
        saved = 0
        while chunk := list(itertools.islice(changed, RFM_CHUNK)):
            saved += self._save_refreshed(chunk, "profile.rfm_refreshed")
        return saved

    def redate_owned(self, owned: set[int]) -> int:
        """Apply the catalogue's changes since the last call (a product learnt after it was bought, a new
        successor…) to the owned items of the profiles of the ``owned`` partitions: a pass over SQL only
        when it changed; a chunk a fold left stale keeps them for the next call. How many changed."""
        seq, changed_ids = self.catalog.changed_since(self.catalog_seq)
        catalog = self.catalog.products(changed_ids)
        rows = self.store.iter_profiles() if catalog else iter(())
        changed = (p for p in rows if p.owned_items and self._owns(p, owned) and redate(p, catalog))
        saved, complete = 0, True
        while chunk := list(itertools.islice(changed, RFM_CHUNK)):
            done = self._save_refreshed(chunk, "profile.catalog_redated")
            saved, complete = saved + done, complete and done == len(chunk)
        self.catalog_seq = seq if complete else self.catalog_seq
        return saved

    def _owns(self, p: Profile, partitions: set[int]) -> bool:
        return kafka_io.partition_for_key(p.profile_id.encode(), self.sink.partitions(EVENTS)) in partitions

    def _save_refreshed(self, chunk: list[Profile], counter: str) -> int:
        """Save and publish one chunk of refreshed profiles; how many (0: left for the next refresh)."""
        docs = {p.profile_id: profile_doc(p) for p in chunk}
        publish = functools.partial(self._publish, docs, [])
        try:  # refreshed values do not change the version: a profile folded meanwhile is done next time
            expect = Expect(versions={p.profile_id: p.version for p in chunk})
            self.store.save(chunk, [], GROUP_ID, self.incarnation, {}, expect=expect, before_write=publish, docs=docs)
        except StaleProfiles as exc:
            log.info("a chunk refreshed between batches left for the next refresh: %s", exc)
            return 0
        put = RedisWrite(functools.partial(self.cache.put_many, docs=docs))
        self.sink.carry_out([put, Count({counter: len(chunk)})])
        return len(chunk)

    def _without_erased(
        self, current: dict[str, Profile], routed: list[tuple[str, Event]]
    ) -> tuple[list[tuple[str, Event]], int]:
        """The events of profiles not erased, and how many were dropped: events that were past ingest when
        their profile was erased (the profile, or the one it was merged into, is in ``erased_profiles``)."""
        named = named_profiles(routed) | {p.merged_into for p in current.values() if p.merged_into}
        erased = self.store.erased_among(named)
        if not erased:
            return routed, 0

        def is_erased(pid: str, event: Event) -> bool:
            ids = [pid, *([event.properties.absorbed_id] if isinstance(event, ProfileMerged) else [])]
            return any(i in erased or survivor_of(current, i) in erased for i in ids)

        kept = [(pid, event) for pid, event in routed if not is_erased(pid, event)]
        return kept, len(routed) - len(kept)

    def _not_folded_yet(self, routed: list[tuple[str, Event]]) -> tuple[list[tuple[str, Event]], int]:
        """The events whose input (its intake journal seq) is not folded yet, each input once, and how many
        were left out: an input the journal produced again after a broker loss (crmhub.core.intake)."""
        seqs = [event.input_seq for _, event in routed if event.input_seq is not None]
        if not seqs:
            return routed, 0
        seen = self.store.folded_among(seqs)
        kept = []
        for pid, event in routed:
            if event.input_seq is None or event.input_seq not in seen:
                kept.append((pid, event))
                if event.input_seq is not None:
                    seen.add(event.input_seq)
        return kept, len(routed) - len(kept)

    def _load(self, wanted: set[str], from_cache: bool = True) -> dict[str, Profile]:
        """The wanted profiles and, for merged ones among them, the profiles they were merged into (cache
        first unless not ``from_cache``, then SQL)."""
        found: dict[str, Profile] = {}
        while wanted:
            ids = list(wanted)
            loaded = self.cache.get_many(ids) if from_cache else {}
            loaded.update(self.store.load(pid for pid in ids if pid not in loaded))
            found.update(loaded)
            wanted = {p.merged_into for p in loaded.values() if p.merged_into and p.merged_into not in found}
        return found


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """On assignment, resume every partition from the offset stored with the profiles in SQL."""

    def __init__(self, consumer: KafkaConsumer, worker: ProfileWorker) -> None:
        self.consumer = consumer
        self.worker = worker

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.worker.forget({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        stored = self.worker.resume(self.consumer, {(tp.topic, tp.partition) for tp in assigned})
        log.info("assigned %s; resuming from stored offsets %s", sorted(t.partition for t in assigned), stored)


def main() -> None:
    settings, incarnation, stopper = start_service("profile")
    store = ProfileStore(make_engine(settings.sql_url))
    redis_client = redis.Redis.from_url(settings.redis_dsn)
    producer = kafka_io.producer(settings)
    clock = functools.partial(datetime.now, UTC)
    sink = Sink(SERVICE, producer, redis_client, clock)
    consumer = kafka_io.consumer(settings, GROUP_ID)
    rules = FoldRules.from_settings(settings)
    worker = ProfileWorker(store, ProfileCache(redis_client), sink, incarnation, rules, settings.publishes_profiles)
    if is_new_broker(store, GROUP_ID, incarnation):
        window = timedelta(seconds=settings.rebuild_window_s)
        partitions = len(producer.partitions_for(PROFILE_CHANGES))
        sent = republish_recent(store, producer, clock(), window, partitions)
        log.info("a new broker: %d profiles changed within %s published again for the faust stages", sent, window)
    worker.rewind = lambda partitions: log.info("rewound to %s", worker.resume(consumer, partitions))
    consumer.subscribe([EVENTS], listener=SeekToStoredOffsets(consumer, worker))
    log.info("profile consuming %s into %s", EVENTS, store.engine.url.render_as_string(hide_password=True))
    refresh = Every(settings.rfm_refresh_s, lambda: refresh_profiles(worker, consumer, clock()))
    source = KafkaSource(consumer, BATCH_BYTES, settings.consumer_linger_ms / 1000)
    runtime = Runtime(SERVICE, source, sink, worker.handle, clock, stopper)
    try:
        runtime.run(settings.batch_size, between=refresh)
    finally:
        producer.close()


def refresh_profiles(worker: ProfileWorker, consumer: KafkaConsumer, now: datetime) -> None:
    """Between batches: the RFM scores, then the catalogue's changes to owned items."""
    owned = {tp.partition for tp in consumer.assignment() if tp.topic == EVENTS}
    if owned:
        started = time.monotonic()
        changed = worker.refresh_rfm(owned, now)
        log.info("RFM refreshed: %d profiles changed (%.1f s)", changed, time.monotonic() - started)
        if redated := worker.redate_owned(owned):
            log.info("catalogue changes applied to the owned items of %d profiles", redated)
