"""profile wiring: crm.events.v1 -> fold and merge -> crm.profiles.v1 + SQL (with offsets) + Redis cache."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime

import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from pydantic import ValidationError

from crmhub import kafka as kafka_io
from crmhub import metrics
from crmhub.runtime import Every, run_batches, start_service
from crmhub.stats import RECENT_DEADLETTERS, add_counts, push_recent
from crmhub.topics import DEADLETTER, EVENTS, PROFILE_CHANGES, PROFILES
from schemas.events import Event, ProfileMerged, decode_event_batch
from schemas.outputs import DeadLetter
from schemas.profile import Profile
from services.profile.cache import ProfileCache
from services.profile.merge import fold_batch, survivor_of
from services.profile.policy import DEFAULT_RULES, FoldRules
from services.profile.rfm import base_thresholds, with_rfm
from services.profile.store import ProfileStore, make_engine

log = logging.getLogger("crmhub.profile")
GROUP_ID = "crmhub-profile"
SERVICE = "profile"


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """On assignment, resume every partition from the offset stored with the profiles in SQL."""

    def __init__(self, consumer: KafkaConsumer, store: ProfileStore, incarnation: str) -> None:
        self.consumer = consumer
        self.store = store
        self.incarnation = incarnation

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        stored = self.store.offsets(GROUP_ID, EVENTS, self.incarnation)
        for tp in assigned:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition])
            else:
                self.consumer.seek_to_beginning(tp)
        log.info("assigned %s; resuming from stored offsets %s", sorted(t.partition for t in assigned), stored)


def named_profiles(routed: list[tuple[str, Event]]) -> set[str]:
    """Every profile id the events name: the ones they are stamped with and the ones merges absorb."""
    named = {pid for pid, _ in routed}
    named.update(event.properties.absorbed_id for _, event in routed if isinstance(event, ProfileMerged))
    return named


def new_identifiers(before: Profile | None, after: Profile) -> list[tuple[str, str]]:
    """Identifiers ``after`` holds that ``before`` did not: the only ones the store must write."""
    old = {(kind, v) for kind, values in before.identifiers.items() for v in values} if before else set()
    return [(kind, v) for kind, values in after.identifiers.items() for v in values if (kind, v) not in old]


class ProfileWorker:
    def __init__(
        self,
        store: ProfileStore,
        cache: ProfileCache,
        producer: KafkaProducer,
        incarnation: str,
        rules: FoldRules = DEFAULT_RULES,
    ) -> None:
        self.store = store
        self.rules = rules
        self.cache = cache
        self.producer = producer
        self.incarnation = incarnation
        self.change_partitions = len(producer.partitions_for(PROFILE_CHANGES))
        self.event_partitions = len(producer.partitions_for(EVENTS))  # events are keyed by profile

    def handle(self, records: list[ConsumerRecord]) -> Counter[str]:
        started = time.monotonic()
        routed: list[tuple[str, Event]] = []
        next_offsets: dict[tuple[str, int], int] = {}
        dead: list[bytes] = []
        reasons: Counter[tuple[str, ...]] = Counter()
        for record in records:
            next_offsets[(record.topic, record.partition)] = record.offset + 1
            try:
                events = decode_event_batch(record.value)
            except ValidationError as exc:
                dead.append(self._dead_letter(record, str(exc.errors(include_url=False)[0]["msg"])))
                reasons[(SERVICE, "invalid body")] += 1
                continue
            for event in events:
                if event.profile_id is None:
                    dead.append(self._dead_letter(record, f"event {event.event_id} has no profile_id"))
                    reasons[(SERVICE, "no profile_id")] += 1
                else:
                    routed.append((event.profile_id, event))
        current = self._load(named_profiles(routed))
        routed, suppressed = self._without_erased(current, routed)
        changed = list(fold_batch(current, routed, self.rules).values())
        after = {**current, **{p.profile_id: p for p in changed}}
        timeline = [(survivor_of(after, pid), event) for pid, event in routed]
        moved = {p.profile_id: survivor_of(after, p.profile_id) for p in changed if p.merged_into}
        new_ids = [
            (kind, value, p.profile_id)
            for p in changed
            for kind, value in new_identifiers(current.get(p.profile_id), p)
        ]
        docs = self._publish(changed, dead)
        self.store.save(changed, new_ids, GROUP_ID, self.incarnation, next_offsets, timeline, moved)
        counts = Counter(
            {
                "profile.events": len(routed),
                "profile.suppressed": suppressed,
                "profile.updated": len(changed),
                "profile.deadletters": len(dead),
            }
        )
        pipe = self.cache.redis.pipeline(transaction=False)
        self.cache.put_many(pipe, docs)
        add_counts(pipe, counts)
        push_recent(pipe, RECENT_DEADLETTERS, dead)
        pipe.execute()
        self._meter(routed, len(changed), dead, reasons, started)
        return counts

    @staticmethod
    def _meter(
        routed: list[tuple[str, Event]],
        changed: int,
        dead: list[bytes],
        reasons: Counter[tuple[str, ...]],
        started: float,
    ) -> None:
        """The batch's metrics: one update per label set; latency from receipt to commit, per event."""
        done = datetime.now(UTC)
        metrics.count(metrics.CONSUMED, metrics.count_types(SERVICE, EVENTS, (event.type for _, event in routed)))
        produced: dict[tuple[str, ...], int] = {
            (SERVICE, PROFILES, "profile"): changed,
            (SERVICE, PROFILE_CHANGES, "profile"): changed,
        }
        metrics.count(metrics.PRODUCED, {**produced, (SERVICE, DEADLETTER, "deadletter"): len(dead)})
        metrics.count(metrics.DEADLETTERS, reasons)
        metrics.MERGES.labels(SERVICE).inc(sum(isinstance(event, ProfileMerged) for _, event in routed))
        metrics.observe_ages(metrics.LATENCY, SERVICE, done, (event.received_at for _, event in routed))
        metrics.BATCH_SECONDS.labels(SERVICE).observe(time.monotonic() - started)

    def _publish(self, changed: list[Profile], dead: list[bytes]) -> dict[str, bytes]:
        """Publish the changed profiles (and dead letters) and drop their stale cache entries; the docs.

        Publish first, then commit: a crash in between replays the batch, which folds to the same
        profiles (same versions), so downstream sees a duplicate at worst, never a gap."""
        docs = {p.profile_id: p.model_dump_json().encode() for p in changed}
        for pid, doc in docs.items():
            self.producer.send(PROFILES, key=pid.encode(), value=doc)
        kafka_io.send_batched(self.producer, PROFILE_CHANGES, list(docs.items()), self.change_partitions)
        for value in dead:
            self.producer.send(DEADLETTER, value=value)
        self.producer.flush()
        self.cache.invalidate(docs)
        return docs

    def refresh_rfm(self, owned: set[int], now: datetime) -> int:
        """RFM scores of the profiles of the ``owned`` partitions against the whole base (two passes over
        SQL, between batches, so no fold runs meanwhile); publish and save those whose scores changed.
        Other instances refresh the profiles of their partitions, so none writes a profile it does not
        own. Returns how many changed."""
        thresholds = base_thresholds(self.store.iter_profiles(), now)
        changed = [
            refreshed
            for p in self.store.iter_profiles()
            if kafka_io.partition_for_key(p.profile_id.encode(), self.event_partitions) in owned
            and (refreshed := with_rfm(p, thresholds, now)) is not None
        ]
        for start in range(0, len(changed), 1000):
            chunk = changed[start : start + 1000]
            docs = self._publish(chunk, [])
            self.store.save(chunk, [], GROUP_ID, self.incarnation, {})
            pipe = self.cache.redis.pipeline(transaction=False)
            self.cache.put_many(pipe, docs)
            add_counts(pipe, {"profile.rfm_refreshed": len(chunk)})
            pipe.execute()
        return len(changed)

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

    def _load(self, wanted: set[str]) -> dict[str, Profile]:
        """The wanted profiles and, for merged ones among them, the profiles they were merged into (cache
        first, then SQL)."""
        found: dict[str, Profile] = {}
        while wanted:
            ids = list(wanted)
            loaded = self.cache.get_many(ids)
            loaded.update(self.store.load(pid for pid in ids if pid not in loaded))
            found.update(loaded)
            wanted = {p.merged_into for p in loaded.values() if p.merged_into and p.merged_into not in found}
        return found

    @staticmethod
    def _dead_letter(record: ConsumerRecord, reason: str) -> bytes:
        return (
            DeadLetter(
                reason=reason,
                location="body",
                source="crm",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                received_at=datetime.now(UTC),
                original=bytes(record.value or b"").decode(errors="replace"),
            )
            .model_dump_json()
            .encode()
        )


def main() -> None:
    settings, incarnation, stopper = start_service("profile")
    store = ProfileStore(make_engine(settings.sql_url))
    cache = ProfileCache(redis.Redis.from_url(settings.redis_dsn))
    producer = kafka_io.producer(settings)
    consumer = kafka_io.consumer(settings, GROUP_ID)
    consumer.subscribe([EVENTS], listener=SeekToStoredOffsets(consumer, store, incarnation))
    worker = ProfileWorker(store, cache, producer, incarnation, FoldRules.from_settings(settings))
    log.info("profile consuming %s into %s", EVENTS, store.engine.url.render_as_string(hide_password=True))
    refresh = Every(settings.rfm_refresh_s, lambda: refresh_rfm(worker, consumer))
    # Kafka commits are for lag monitoring only: the offsets that count are in SQL with the profiles
    run_batches(
        "profile", consumer, producer, stopper, settings.batch_size, worker.handle, consumer.commit_async, refresh
    )


def refresh_rfm(worker: ProfileWorker, consumer: KafkaConsumer) -> None:
    owned = {tp.partition for tp in consumer.assignment() if tp.topic == EVENTS}
    if owned:
        started = time.monotonic()
        changed = worker.refresh_rfm(owned, datetime.now(UTC))
        log.info("RFM refreshed: %d profiles changed (%.1f s)", changed, time.monotonic() - started)
