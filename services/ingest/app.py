"""ingest wiring: raw topics -> decode -> dedup -> identity -> crm.events.v1 / crm.deadletter.v1."""

from __future__ import annotations

import functools
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import redis
from kafka.consumer.fetcher import ConsumerRecord

from crmhub.core import deadletters, metrics
from crmhub.core import kafka as kafka_io
from crmhub.core.effects import Commit, Count, Effect, Latency, Outcome, PublishBatch, RedisWrite, Tally
from crmhub.core.effects import DeadLetter as DeadLetterEffect
from crmhub.core.intake import SEQ_HEADER
from crmhub.core.pseudonyms import identity_key
from crmhub.core.runtime import KafkaSource, Runtime, start_service
from crmhub.core.settings import Settings
from crmhub.core.sink import Sink
from crmhub.core.topics import EVENTS, RAW_TOPICS
from schemas.events import Event, ProductUpserted, ProfileMerged
from schemas.readmodels.catalog import put_products
from services.ingest.decode import RawInput, Rejection, decode_raw
from services.ingest.identity import BatchPlan, IdentityRules, Merge, Resolution, resolve_batch
from services.ingest.normalize import parse_time, shared_identifiers
from services.ingest.state import IngestState

log = logging.getLogger("crmhub.ingest")
GROUP_ID = "crmhub-ingest"
SERVICE = "ingest"
_MERGE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "crmhub:profile.merged")


@functools.cache
def source_of(topic: str) -> str:
    return topic.split(".")[2]  # crm.raw.<source>.v1


def raw_input(record: ConsumerRecord, now: datetime) -> tuple[RawInput, str | None]:
    if not record.headers:  # the common case: no collector headers to parse
        return RawInput(source_of(record.topic), bytes(record.value or b""), now), None
    headers = {k: v.decode(errors="replace") for k, v in record.headers}
    received = now
    try:
        received = parse_time(headers.get("received_at"), "received_at") or now
        sent_at = parse_time(headers.get("sent_at"), "sent_at")
    except ValueError:
        sent_at = None
    raw = RawInput(source_of(record.topic), bytes(record.value or b""), received, sent_at)
    return raw, headers.get("request_id")


def claim_location(record: ConsumerRecord, incarnation: str) -> tuple[str, int | None]:
    """Where an input was read, as its dedup claim names it, and its intake journal seq if it has one.

    An input from the collector's journal (embedded broker) is named by its journal seq, which stays the
    same when the journal produces it again after a broker loss: the claim recognises it as itself, not
    as a duplicate (a client's resend is a new journal record, so still a duplicate). Any other input is
    named by its place in the broker's incarnation of the raw topic."""
    for name, value in record.headers or ():
        if name == SEQ_HEADER:
            seq = int(value)
            return f"journal:{seq}", seq
    return f"{incarnation}:{record.topic}:{record.partition}:{record.offset}", None


def dead_letter(record: ConsumerRecord, raw: RawInput, request_id: str | None, rejection: Rejection) -> bytes:
    return deadletters.build(
        reason=rejection.reason,
        location=rejection.location,
        source=raw.source,
        original=raw.value,
        received_at=raw.received_at,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        request_id=request_id,
    )


def log_rejection(record: ConsumerRecord, raw: RawInput, rejection: Rejection) -> str:
    """Log a refused input by its id and location (never its content, which names people); its reason label."""
    label = metrics.reason_label(rejection.reason, rejection.location)
    log.info(
        "dead letter %s[%d]@%d: %s (%s)",
        record.topic,
        record.partition,
        record.offset,
        label,
        rejection.location,
        extra={
            "event_id": input_id(raw.value),
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": label,
        },
    )
    return label


def input_id(value: bytes) -> str | None:
    """The producer-chosen id of a refused input (``event_id``, Segment's ``messageId``), if it has one."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    found = doc.get("event_id") or doc.get("messageId") if isinstance(doc, dict) else None
    return found[:100] if isinstance(found, str) else None  # a refused id may be anything: a bounded field


def identity_rules(settings: Settings) -> IdentityRules:
    return IdentityRules(settings.identity_kinds, settings.identity_kind_limits)


def merge_event(merge: Merge, cause: Event) -> bytes:
    """The ``profile.merged`` event ``cause`` makes; its id depends on the two profiles only."""
    kind, value = merge.linked_by
    event = ProfileMerged.model_validate(
        {
            "event_id": str(uuid.uuid5(_MERGE_NAMESPACE, f"{merge.survivor}:{merge.absorbed}")),
            "type": "profile.merged",
            "source": "crm",
            "occurred_at": cause.occurred_at,
            "received_at": cause.received_at,
            "profile_id": merge.survivor,
            kind: value,
            "properties": {"survivor_id": merge.survivor, "absorbed_id": merge.absorbed, "linked_by": kind},
        }
    )
    return event.model_dump_json().encode()


def stamped(event: Event, res: Resolution) -> bytes:
    """The event as it goes on: stamped with its profile, without the identifiers a limit kept from it.

    The same bytes as ``event.model_copy(update=...).model_dump_json().encode()`` at about half the cost:
    the event was decoded for this batch and is not used after it is sent, so it is stamped in place
    instead of copied (a pydantic copy costs about as much as the serialisation), and the serializer's
    bytes are used as they are instead of going through str and back. Call it last on an event."""
    object.__setattr__(event, "profile_id", res.profile_id)  # frozen against accidents, not against ingest
    for kind, _ in res.limited:
        object.__setattr__(event, kind, None)
    return event.__pydantic_serializer__.to_json(event)


@dataclass
class Batch:
    """What one batch of raw inputs came to, as the handler sorts it."""

    counts: Counter[str] = field(default_factory=Counter)
    consumed: Counter[tuple[str, ...]] = field(default_factory=Counter)
    good: list[tuple[str, Event]] = field(default_factory=list)
    dead: list[DeadLetterEffect] = field(default_factory=list)


class IngestWorker:
    """ingest's handler and its state: the dedup claims and the identity graph in Redis."""

    def __init__(
        self,
        state: IngestState,
        incarnation: str,
        rules: IdentityRules,
        shared: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.state = state
        self.shared = shared
        self.incarnation = incarnation
        self.rules = rules

    def pending_merges(self) -> list[Effect]:
        """The merge events a crashed ingest recorded but may not have sent (see services.ingest.state)."""
        pending = self.state.pending_merges()
        if not pending:
            return []
        log.info("re-sending %d merge events left by an earlier ingest", len(pending))
        items = [(orjson.loads(doc)["profile_id"], doc) for doc in pending]
        return [PublishBatch(EVENTS, items), RedisWrite(functools.partial(self.state.drop_sent_merges, events=pending))]

    def handle(self, records: list[ConsumerRecord], now: datetime) -> Outcome:
        """Process one batch; every record yields exactly one event, duplicate drop, suppressed drop (an
        identifier of an erased profile), or dead letter."""
        batch = self.sort(records, now)
        # one customer's inputs may arrive on several raw partitions: restore time order within the batch
        events = sorted(self._dedup(batch.good), key=lambda ev: ev.occurred_at)
        counts = batch.counts
        counts["ingest.duplicates"] = len(batch.good) - len(events)
        counts["ingest.deadletters"] = len(batch.dead)
        products = [event for event in events if isinstance(event, ProductUpserted)]
        events = [event for event in events if not isinstance(event, ProductUpserted)] if products else events
        counts["ingest.out"] = len(events)
        received = [event.received_at for event in events]  # before _forward: it stamps them
        merges, items, produced = self._forward(events, counts)
        effects: list[Effect] = [PublishBatch(EVENTS, items), *batch.dead]
        if products:  # about no customer: they go to the catalogue, not to crm.events.v1
            counts["ingest.catalog"] = len(products)
            effects.append(RedisWrite(functools.partial(put_products, events=products), "catalog"))
        effects += [
            RedisWrite(functools.partial(self.state.drop_sent_merges, events=merges)),
            Count(counts),
            Tally(metrics.CONSUMED, batch.consumed),
            Tally(metrics.PRODUCED, produced),
            Tally(metrics.DUPLICATES, {(SERVICE,): counts["ingest.duplicates"]}, touch=True),
            Tally(metrics.MERGES, {(SERVICE,): counts["ingest.merges"]}, touch=True),
            Latency(received),
        ]
        return Outcome(effects, Commit.SYNC)

    def sort(self, records: list[ConsumerRecord], now: datetime) -> Batch:
        """Decode every record: an event with its claim location, or a dead letter."""
        batch = Batch()
        for record in records:
            raw, request_id = raw_input(record, now)
            batch.counts[f"ingest.in.{raw.source}"] += 1
            result = decode_raw(raw, self.shared)
            if isinstance(result, Rejection):
                label = log_rejection(record, raw, result)
                batch.dead.append(DeadLetterEffect(dead_letter(record, raw, request_id, result), label))
                batch.consumed[(SERVICE, record.topic, "invalid")] += 1
                continue
            location, seq = claim_location(record, self.incarnation)
            if seq is not None:
                object.__setattr__(result, "input_seq", seq)  # decoded for this batch (see stamped)
            batch.good.append((location, result))
            batch.consumed[(SERVICE, record.topic, result.type)] += 1
        return batch

    def _dedup(self, good: list[tuple[str, Event]]) -> list[Event]:
        won = self.state.claim([(ev.event_id, location) for location, ev in good])
        kept: list[Event] = []
        seen: set[str] = set()
        for (_, event), ok in zip(good, won, strict=True):
            if ok and event.event_id not in seen:
                seen.add(event.event_id)
                kept.append(event)
        return kept

    def _forward(
        self, events: list[Event], counts: Counter[str]
    ) -> tuple[list[bytes], list[tuple[str, bytes]], Counter[tuple[str, ...]]]:
        """Resolve identities; the merge events made, the (key, document) items to send (each merge before
        the event that caused it) and the (service, topic, type) tally of what is sent."""
        plan, merges = self._resolve(events, counts)
        items: list[tuple[str, bytes]] = []
        produced: Counter[tuple[str, ...]] = Counter()
        for event, res, docs in zip(events, plan.resolutions, merges, strict=True):
            if res.suppressed:
                counts["ingest.suppressed"] += 1
                counts["ingest.out"] -= 1
                continue
            items += [(merge.survivor, doc) for merge, doc in zip(res.merges, docs, strict=True)]
            produced[(SERVICE, EVENTS, event.type)] += 1
            items.append((res.profile_id, stamped(event, res)))
        counts["ingest.merges"] = len(plan.merges)
        produced[(SERVICE, EVENTS, "profile.merged")] = len(plan.merges)
        counts["identity.limited"] = sum(len(res.limited) for res in plan.resolutions)
        return [doc for docs in merges for doc in docs], items, produced

    def _resolve(self, events: list[Event], counts: Counter[str]) -> tuple[BatchPlan, list[list[bytes]]]:
        """Resolve the batch on a snapshot and store the plan; if another ingest changed the graph around
        the batch in between, resolve again on a new snapshot (optimistic concurrency)."""
        ids = [event.identifiers() for event in events]
        keys = sorted({key for i in ids for key in i.items()})
        while True:
            snapshot, raw = self.state.snapshot(keys)
            plan = resolve_batch(ids, snapshot, self.rules)
            merges = [
                [merge_event(m, ev) for m in res.merges] for ev, res in zip(events, plan.resolutions, strict=True)
            ]
            if self.state.apply(keys, raw, plan, [doc for docs in merges for doc in docs]):
                return plan, merges
            counts["identity.conflicts"] += 1


def main() -> None:
    settings, incarnation, stopper = start_service("ingest")
    redis_client = redis.Redis.from_url(settings.redis_dsn)
    state = IngestState(redis_client, settings.dedup_window_s, identity_key(settings))
    consumer = kafka_io.consumer(settings, GROUP_ID)
    consumer.subscribe(list(RAW_TOPICS))
    log.info("ingest consuming %s", ", ".join(RAW_TOPICS))
    shared = shared_identifiers(settings.shared_identifiers)
    worker = IngestWorker(state, incarnation, identity_rules(settings), shared)
    producer = kafka_io.producer(settings)
    clock = functools.partial(datetime.now, UTC)
    sink = Sink(SERVICE, producer, redis_client, clock)
    source = KafkaSource(consumer, linger_s=settings.consumer_linger_ms / 1000)
    runtime = Runtime(SERVICE, source, sink, worker.handle, clock, stopper)
    runtime.perform(worker.pending_merges())
    try:
        runtime.run(settings.batch_size)
    finally:
        producer.close()
