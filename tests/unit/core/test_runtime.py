"""The runtime on the in-memory harness: effects carried out in order, retryable errors retried on the
same batch, poison dead-lettered with its reason and location while the stream goes on."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import redis.exceptions

from crmhub.core import metrics
from crmhub.core.effects import Commit, Count, DeadLetter, Latency, Outcome, Publish, PublishBatch, RedisWrite, Tally
from crmhub.core.errors import (
    ConfigError,
    CrmhubError,
    Poison,
    PortInUse,
    Retryable,
    ServerUnavailable,
    is_retryable,
)
from crmhub.core.kafka import FETCH_MAX_WAIT_MS
from crmhub.core.runtime import Backoff, KafkaSource
from crmhub.core.stats import RECENT_DEADLETTERS, read_counts
from crmhub.core.testing import MemoryProducer, MemorySource, Record, TestClock, harness
from crmhub.core.topics import DEADLETTER

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def records(n: int, topic: str = "crm.events.v1") -> list[Record]:
    return [Record(topic, 0, i, value=orjson.dumps({"n": i})) for i in range(n)]


def echo(batch: list[Any], now: datetime) -> Outcome:
    """Publish every value to ``out``, count them."""
    return Outcome([*(Publish("out", r.value) for r in batch), Count({"test.in": len(batch)})])


def test_the_tree_has_one_root_and_splits_retryable_from_poison() -> None:
    for kind in (ConfigError, PortInUse, ServerUnavailable, Retryable, Poison):
        assert issubclass(kind, CrmhubError)
    assert is_retryable(ServerUnavailable("sql")) and is_retryable(redis.exceptions.ConnectionError())
    assert not is_retryable(ValueError("bad data")) and not is_retryable(Poison("bad"))


def test_effects_are_carried_out_and_the_batch_committed(redis_client: Any) -> None:
    source, producer = MemorySource(records(3)), MemoryProducer()
    harness("test", source, producer, redis_client, echo, TestClock(T0)).run_until_drained(batch_size=2)
    assert [orjson.loads(v)["n"] for v in producer.values("out")] == [0, 1, 2]
    assert producer.flushes == 2  # one per batch
    assert read_counts(redis_client) == {"test.in": 3}
    assert source.commits == [Commit.SYNC, Commit.SYNC]


def test_every_kind_of_effect(redis_client: Any) -> None:
    before = metrics.CONSUMED.labels("test", "t", "x")._value.get()

    def handler(batch: list[Any], now: datetime) -> Outcome:
        return Outcome(
            [
                PublishBatch("batched", [("k1", b'{"a":1}'), ("k1", b'{"a":2}')]),
                DeadLetter(b'{"reason":"x"}', "invalid body"),
                RedisWrite(lambda pipe: pipe.set("mine", b"1")),
                Tally(metrics.CONSUMED, {("test", "t", "x"): 2}),
                Latency([now]),
            ],
            Commit.ASYNC,
        )

    source, producer = MemorySource(records(1)), MemoryProducer()
    harness("test", source, producer, redis_client, handler, TestClock(T0)).run_until_drained()
    [batched] = producer.values("batched")
    assert orjson.loads(batched) == [{"a": 1}, {"a": 2}]  # one record per partition
    assert producer.values(DEADLETTER) == [b'{"reason":"x"}']
    assert redis_client.get("mine") == b"1"
    assert redis_client.lrange(RECENT_DEADLETTERS, 0, -1) == [b'{"reason":"x"}']
    assert metrics.CONSUMED.labels("test", "t", "x")._value.get() == before + 2
    assert source.commits == [Commit.ASYNC]


def test_a_server_not_answering_is_waited_for_and_the_same_batch_handled_again(redis_client: Any) -> None:
    seen: list[list[int]] = []

    def flaky(batch: list[Any], now: datetime) -> Outcome:
        seen.append([r.offset for r in batch])
        if len(seen) <= 2:
            raise redis.exceptions.ConnectionError("Redis is restarting")
        return echo(batch, now)

    source, producer = MemorySource(records(3)), MemoryProducer()
    runtime = harness("test", source, producer, redis_client, flaky, TestClock(T0))
    runtime.run_until_drained()
    assert seen == [[0, 1, 2]] * 3  # the same batch, never skipped nor split
    assert runtime.retries == 2
    assert len(producer.values("out")) == 3 and producer.values(DEADLETTER) == []
    assert source.commits == [Commit.SYNC]


def test_poison_becomes_a_dead_letter_with_reason_and_location_and_the_stream_goes_on(redis_client: Any) -> None:
    def picky(batch: list[Any], now: datetime) -> Outcome:
        if any(r.offset == 1 for r in batch):
            raise KeyError("total")
        return echo(batch, now)

    clock = TestClock(T0)
    source, producer = MemorySource(records(3)), MemoryProducer()
    harness("test", source, producer, redis_client, picky, clock).run_until_drained()
    assert [orjson.loads(v)["n"] for v in producer.values("out")] == [0, 2]
    [letter] = [orjson.loads(v) for v in producer.values(DEADLETTER)]
    assert letter["reason"] == "KeyError: 'total'"
    assert letter["location"].startswith("test_runtime.py:picky:")
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("crm.events.v1", 0, 1)
    assert letter["original"] == '{"n":1}' and letter["received_at"].startswith("2026-01-01T12:00:00")
    assert read_counts(redis_client) == {"test.in": 2, "test.deadletters": 1}
    assert source.commits == [Commit.SYNC]  # once, after the whole batch


def test_a_poison_exception_names_its_reason_and_location(redis_client: Any) -> None:
    def refuse(batch: list[Any], now: datetime) -> Outcome:
        raise Poison("total is negative", "properties.total")

    source, producer = MemorySource(records(1, "crm.raw.pos.v1")), MemoryProducer()
    harness("test", source, producer, redis_client, refuse, TestClock(T0)).run_until_drained()
    [letter] = [orjson.loads(v) for v in producer.values(DEADLETTER)]
    assert (letter["reason"], letter["location"], letter["source"]) == (
        "total is negative",
        "properties.total",
        "pos",
    )


def test_stopping_while_waiting_to_retry_leaves_the_batch_uncommitted(redis_client: Any) -> None:
    source, producer = MemorySource(records(2)), MemoryProducer()

    def down(batch: list[Any], now: datetime) -> Outcome:
        runtime.stopper.stopped = True  # SIGTERM arrives while SQL is down
        raise ServerUnavailable("SQL is down")

    runtime = harness("test", source, producer, redis_client, down, TestClock(T0))
    runtime.backoff = Backoff(1.0, 1.0)
    runtime.run(batch_size=10)
    assert source.commits == [] and source.closed and producer.sent == []


def test_the_testing_clock_moves_only_when_told() -> None:
    clock = TestClock(T0)
    assert clock() == T0
    clock.advance(90)
    assert (clock() - T0).total_seconds() == 90


@pytest.mark.parametrize("attempt,delay", [(1, 0.2), (2, 0.4), (6, 5.0), (20, 5.0)])
def test_backoff_doubles_up_to_its_cap(attempt: int, delay: float) -> None:
    assert Backoff().delay(attempt) == pytest.approx(delay)


class FakeConsumer:
    """A consumer with records of the given value sizes; polls record what they were asked for."""

    def __init__(self, sizes: list[int]) -> None:
        self.left = [Record("crm.events.v1", 0, i, value=b"x" * size) for i, size in enumerate(sizes)]
        self.asked: list[int] = []
        self._fetcher = SimpleNamespace(config={"fetch_max_wait_ms": 0})  # kafka-python's, as KafkaSource sets it

    def poll(self, timeout_ms: int, max_records: int) -> dict[str, list[Record]]:
        self.asked.append(max_records)
        taken, self.left = self.left[:max_records], self.left[max_records:]
        return {"tp": taken} if taken else {}


def test_a_byte_bounded_source_asks_for_as_many_records_as_the_last_ones_say_fit() -> None:
    consumer = FakeConsumer([100] * 21 + [1000] * 30)
    source = KafkaSource(consumer, max_bytes=2000)
    sizes = [len(source.poll(n)) for n in (2000, 2000, 2000, 2000)]
    # at first one record (it may be full); 100 B: 20 fit next, twice; the second 20 are of 1000 B: 2 fit
    assert consumer.asked == [1, 20, 20, 2]
    assert sizes == [1, 20, 20, 2]
    assert consumer._fetcher.config["fetch_max_wait_ms"] == FETCH_MAX_WAIT_MS  # records came: the short wait
    unbounded = FakeConsumer([1000] * 30)
    assert len(KafkaSource(unbounded).poll(25)) == 25


def test_a_source_lingers_between_polls_while_records_come_steadily() -> None:
    source = KafkaSource(FakeConsumer([100] * 30), linger_s=0.05)
    started = time.monotonic()
    assert len(source.poll(2000)) == 30  # a partial batch of 30: the next poll lingers
    assert source.poll(2000) == []
    assert time.monotonic() - started >= 0.05
