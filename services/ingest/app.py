"""ingest wiring: raw topics -> decode -> dedup -> identity -> crm.events.v1 / crm.deadletter.v1."""

from __future__ import annotations

import base64
import logging
from collections import Counter
from datetime import UTC, datetime

import redis
from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from crmhub import kafka as kafka_io
from crmhub.runtime import run_batches, start_service
from crmhub.stats import RECENT_DEADLETTERS, add_counts, push_recent
from crmhub.topics import DEADLETTER, EVENTS, RAW_TOPICS
from schemas.events import Event
from schemas.outputs import DeadLetter
from services.ingest.decode import RawInput, Rejection, decode_raw
from services.ingest.identity import resolve_batch
from services.ingest.normalize import parse_time
from services.ingest.state import IngestState

log = logging.getLogger("crmhub.ingest")
GROUP_ID = "crmhub-ingest"


def source_of(topic: str) -> str:
    return topic.split(".")[2]  # crm.raw.<source>.v1


def raw_input(record: ConsumerRecord, now: datetime) -> tuple[RawInput, str | None]:
    headers = {k: v.decode(errors="replace") for k, v in (record.headers or [])}
    received = now
    try:
        received = parse_time(headers.get("received_at"), "received_at") or now
        sent_at = parse_time(headers.get("sent_at"), "sent_at")
    except ValueError:
        sent_at = None
    raw = RawInput(source_of(record.topic), bytes(record.value or b""), received, sent_at)
    return raw, headers.get("request_id")


def dead_letter(record: ConsumerRecord, raw: RawInput, request_id: str | None, rejection: Rejection) -> bytes:
    try:
        original, encoding = raw.value.decode(), "utf-8"
    except UnicodeDecodeError:
        original, encoding = base64.b64encode(raw.value).decode(), "base64"
    return (
        DeadLetter(
            reason=rejection.reason,
            location=rejection.location,
            source=raw.source,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            request_id=request_id,
            received_at=raw.received_at,
            original=original,
            original_encoding=encoding,
        )
        .model_dump_json()
        .encode()
    )


class IngestWorker:
    def __init__(self, state: IngestState, producer: KafkaProducer, incarnation: str) -> None:
        self.state = state
        self.producer = producer
        self.incarnation = incarnation
        self.event_partitions = len(producer.partitions_for(EVENTS))

    def handle(self, records: list[ConsumerRecord]) -> Counter[str]:
        """Process one batch; every record yields exactly one event, duplicate drop, or dead letter."""
        now = datetime.now(UTC)
        counts: Counter[str] = Counter()
        good: list[tuple[ConsumerRecord, Event]] = []
        dead: list[bytes] = []
        for record in records:
            raw, request_id = raw_input(record, now)
            counts[f"ingest.in.{raw.source}"] += 1
            result = decode_raw(raw)
            if isinstance(result, Rejection):
                dead.append(dead_letter(record, raw, request_id, result))
            else:
                good.append((record, result))
        # one customer's inputs may arrive on several raw partitions: restore time order within the batch
        events = sorted(self._dedup(good), key=lambda ev: ev.occurred_at)
        counts["ingest.duplicates"] = len(good) - len(events)
        counts["ingest.deadletters"] = len(dead)
        counts["ingest.out"] = len(events)
        self._forward(events)
        for value in dead:
            self.producer.send(DEADLETTER, value=value)
        self.producer.flush()
        pipe = self.state.redis.pipeline(transaction=False)
        add_counts(pipe, counts)
        push_recent(pipe, RECENT_DEADLETTERS, dead)
        pipe.execute()
        return counts

    def _dedup(self, good: list[tuple[ConsumerRecord, Event]]) -> list[Event]:
        claims = [(ev.event_id, f"{self.incarnation}:{rec.topic}:{rec.partition}:{rec.offset}") for rec, ev in good]
        won = self.state.claim(claims)
        kept: list[Event] = []
        seen: set[str] = set()
        for (_, event), ok in zip(good, won, strict=True):
            if ok and event.event_id not in seen:
                seen.add(event.event_id)
                kept.append(event)
        return kept

    def _forward(self, events: list[Event]) -> None:
        ids = [ev.identifiers() for ev in events]
        known = self.state.lookup(sorted({(k, v) for i in ids for k, v in i.items()}))
        profile_ids, new_links = resolve_batch(ids, known)
        if new_links:
            winners = self.state.link(new_links)
            if winners != new_links:  # another instance linked an identifier first: follow it
                profile_ids, _ = resolve_batch(ids, {**known, **winners})
        items = [
            (pid, ev.model_copy(update={"profile_id": pid}).model_dump_json().encode())
            for ev, pid in zip(events, profile_ids, strict=True)
        ]
        kafka_io.send_batched(self.producer, EVENTS, items, self.event_partitions)


def main() -> None:
    settings, incarnation, stopper = start_service("ingest")
    state = IngestState(redis.Redis.from_url(settings.redis_dsn), settings.dedup_window_s)
    producer = kafka_io.producer(settings)
    consumer = kafka_io.consumer(settings, GROUP_ID)
    consumer.subscribe(list(RAW_TOPICS))
    log.info("ingest consuming %s", ", ".join(RAW_TOPICS))
    worker = IngestWorker(state, producer, incarnation)
    run_batches("ingest", consumer, producer, stopper, settings.batch_size, worker.handle, consumer.commit)
