"""The faust services' records go to the broker in a batch per partition (crmhub.core.faust_app.FaustSink),
in their order, each keyed one to its key's partition; with a producer that records what it is given."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from crmhub.core.effects import Publish
from crmhub.core.faust_app import FaustSink
from crmhub.core.kafka import partition_for_key
from crmhub.core.testing import TestClock

PARTITIONS = 4


class Batch:
    def __init__(self, room: int) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []
        self.room = room

    def append(self, *, key: bytes | None, value: bytes, timestamp: None) -> object | None:
        if len(value) > 100 or len(self.records) == self.room:
            return None  # full (or the record is bigger than a batch)
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class Producer:
    """aiokafka's producer as the sink uses it: batches of at most ``room`` records."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.batches: list[tuple[str, int, list[tuple[bytes | None, bytes]]]] = []
        self.alone: list[tuple[str, bytes, int | None]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    def create_batch(self) -> Batch:
        return Batch(self.room)

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> asyncio.Future[None]:
        self.batches.append((topic, partition, batch.records))
        return done()

    async def send(self, topic: str, value: bytes, key: Any = None, partition: int | None = None) -> Any:
        self.alone.append((topic, value, partition))
        return done()


def done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


def carry_out(records: list[Publish], room: int = 3) -> Producer:
    producer = Producer(room)
    app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
    pipe = SimpleNamespace(hincrby=lambda *a: None, execute=None)
    redis = SimpleNamespace(pipeline=lambda transaction: pipe)
    sink = FaustSink(app, "segmenter", redis, TestClock(datetime(2026, 1, 1, tzinfo=UTC)))  # type: ignore[arg-type]
    asyncio.run(sink.carry_out(records))
    return producer


def test_keyed_records_go_in_order_in_a_batch_per_partition_of_their_key() -> None:
    keys = [f"p{i}".encode() for i in range(12)]
    records = [Publish("crm.segments.v1", b"v%d" % i, key) for i, key in enumerate(keys)]
    producer = carry_out(records, room=100)
    expected: dict[int, list[tuple[bytes | None, bytes]]] = {}
    for record in records:
        assert record.key is not None
        expected.setdefault(partition_for_key(record.key, PARTITIONS), []).append((record.key, record.value))
    assert {p: r for _, p, r in producer.batches} == expected
    assert len(producer.batches) == len(expected) and producer.alone == []


def test_a_full_batch_is_sent_and_another_started_and_odd_records_go_alone() -> None:
    same = [Publish("t", b"v%d" % i, partition=1) for i in range(7)]
    odd = [Publish("t", b"x" * 101, partition=1), Publish("t", b"unkeyed")]
    producer = carry_out(same + odd, room=3)
    assert [len(records) for _, partition, records in producer.batches] == [3, 3, 1]
    assert [v for _, _, records in producer.batches for _, v in records] == [r.value for r in same]
    assert producer.alone == [("t", b"unkeyed", None), ("t", b"x" * 101, 1)]
