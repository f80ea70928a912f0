"""ingest's wiring on the in-memory harness (no broker; a throwaway Redis): raw inputs in, events, dead
letters, flow counters and commits out, with the clock injected."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from crmhub.core.effects import Commit, Count, Publish, PublishBatch, RedisWrite, counts_in
from crmhub.core.settings import Settings
from crmhub.core.stats import RECENT_DEADLETTERS, read_counts
from crmhub.core.testing import MemoryProducer, MemorySource, Record, TestClock, harness
from crmhub.core.topics import DEADLETTER, EVENTS
from services.ingest.app import SERVICE, IngestWorker, identity_rules
from services.ingest.state import MERGE_OUTBOX, IngestState

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RAW = "crm.raw.web.v1"


def order(event_id: str, email: str, total: str = "10.00") -> bytes:
    doc = {
        "event_id": event_id,
        "source": "web",
        "type": "Order Completed",
        "occurred_at": "2026-01-01T11:00:00+00:00",
        "email": email,
        "properties": {"order_id": f"o-{event_id}", "total": total},
    }
    return orjson.dumps(doc)


def worker(redis_client: Any) -> IngestWorker:
    return IngestWorker(IngestState(redis_client, 3600, b"test-identity-key"), "run-1", identity_rules(Settings()))


def run(redis_client: Any, *values: bytes) -> tuple[MemorySource, MemoryProducer]:
    source = MemorySource(Record(RAW, 0, offset, value=value) for offset, value in enumerate(values))
    producer = MemoryProducer()
    harness(SERVICE, source, producer, redis_client, worker(redis_client).handle, TestClock(T0)).run_until_drained()
    return source, producer


def events(producer: MemoryProducer) -> list[dict[str, Any]]:
    return [doc for value in producer.values(EVENTS) for doc in orjson.loads(value)]


def test_an_input_becomes_an_event_stamped_with_its_profile_and_the_clock(redis_client: Any) -> None:
    source, producer = run(redis_client, order("e1", "ann@example.com"))
    [event] = events(producer)
    assert event["event_id"] == "e1" and event["profile_id"]
    assert event["received_at"].startswith("2026-01-01T12:00:00")  # the injected clock, not the wall's
    assert source.commits == [Commit.SYNC]
    counts = read_counts(redis_client)
    assert counts["ingest.in.web"] == counts["ingest.out"] == 1


def test_a_resent_input_is_a_duplicate_and_a_bad_one_a_dead_letter(redis_client: Any) -> None:
    _, producer = run(redis_client, order("e1", "ann@example.com"), order("e1", "ann@example.com"), b"{not json")
    assert [e["event_id"] for e in events(producer)] == ["e1"]
    [letter] = [orjson.loads(v) for v in producer.values(DEADLETTER)]
    assert (letter["topic"], letter["offset"], letter["source"]) == (RAW, 2, "web")
    assert redis_client.llen(RECENT_DEADLETTERS) == 1
    counts = read_counts(redis_client)
    assert (counts["ingest.duplicates"], counts["ingest.deadletters"], counts["ingest.out"]) == (1, 1, 1)


def test_the_same_input_read_again_at_the_same_place_is_not_a_duplicate(redis_client: Any) -> None:
    """A batch handled again (a retry after Redis came back, a restart before the commit) goes on."""
    w = worker(redis_client)
    batch = [Record(RAW, 0, 5, value=order("e1", "ann@example.com"))]
    first, again = w.handle(batch, T0), w.handle(batch, T0)
    assert counts_in(first.effects)["ingest.out"] == counts_in(again.effects)["ingest.out"] == 1


def test_the_handler_returns_its_effects_as_values(redis_client: Any) -> None:
    outcome = worker(redis_client).handle([Record(RAW, 1, 0, value=order("e9", "bob@example.com"))], T0)
    kinds = [type(e) for e in outcome.effects]
    assert kinds[0] is PublishBatch and RedisWrite in kinds and Count in kinds
    assert outcome.commit is Commit.SYNC


def test_merge_events_left_by_a_crashed_ingest_are_sent_again(redis_client: Any) -> None:
    redis_client.rpush(MERGE_OUTBOX, b'{"profile_id":"P-1","event_id":"m-1"}')
    effects = worker(redis_client).pending_merges()
    assert isinstance(effects[0], PublishBatch) and not isinstance(effects[0], Publish)
    runtime = harness(
        SERVICE, MemorySource(), MemoryProducer(), redis_client, worker(redis_client).handle, TestClock(T0)
    )
    runtime.perform(effects)
    assert redis_client.llen(MERGE_OUTBOX) == 0
