"""The one runtime of the batch services: consume, handle, carry out the effects, commit; retry what is
retryable, dead-letter poison, meter, stop gracefully.

    handler(batch, now) -> Outcome(effects, commit)

``batch`` is a list of records (anything with ``topic partition offset key value headers``: kafka-python's
``ConsumerRecord`` or the harness's ``crmhub.core.testing.Record``), ``now`` the injected clock's time.
The handler is a service's bound method: its state (Redis, SQL) is the object's ports, so a unit test
builds it on in-memory or throwaway stores and calls it, or runs it here on the harness
(``crmhub.core.testing``). The error tree (``crmhub.core.errors``) says what is retried and what is poison.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any, Protocol

from kafka import KafkaConsumer

from crmhub.core import kafka as kafka_io
from crmhub.core import metrics
from crmhub.core.deadletters import build, source_of_topic
from crmhub.core.effects import Commit, Count, DeadLetter, Effect, Outcome
from crmhub.core.errors import Poison, is_retryable
from crmhub.core.logs import setup_logging
from crmhub.core.settings import Settings
from crmhub.core.sink import Sink

log = logging.getLogger("crmhub")
METER_INTERVAL_S = 1.0
TRIM_INTERVAL_S = 30.0
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
Clock = Callable[[], datetime]


class Record(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


Handler = Callable[[list[Any], datetime], Outcome]


class Source(Protocol):
    """Where batches come from and where their positions are committed: Kafka or the harness."""

    def poll(self, max_records: int) -> list[Any]: ...
    def commit(self, how: Commit) -> None: ...
    def lags(self) -> dict[tuple[str, int], int]: ...
    def close(self) -> None: ...


class KafkaSource:
    """A kafka-python consumer as a ``Source``. With ``max_bytes``, a poll asks for at most as many records
    as the mean size of the last poll's records says fit in ``max_bytes``: for topics whose records hold
    batches of items (crm.events.v1: up to 500 events a record), so a catch-up, when every record is full,
    folds a bounded batch; what it does not ask for stays in the consumer's fetch buffer, undecoded. Its
    polls linger (``kafka.Linger``) by ``linger_s``."""

    def __init__(self, consumer: KafkaConsumer, max_bytes: int | None = None, linger_s: float = 0.0) -> None:
        self.consumer = consumer
        self.max_bytes = max_bytes
        # mean value size of the last poll's records; at first as if a record filled the bytes (a service
        # that starts behind meets full records: its first poll must not take thousands of them)
        self.record_bytes = float(max_bytes or 1)
        self.fetch_wait = kafka_io.FetchWait()
        self.linger = kafka_io.Linger(linger_s)

    def poll(self, max_records: int) -> list[Any]:
        if self.max_bytes is not None:
            max_records = max(1, min(max_records, int(self.max_bytes / self.record_bytes)))
        self.linger.before_poll()
        polled = self.consumer.poll(timeout_ms=100, max_records=max_records)
        records = [record for part in polled.values() for record in part]  # partition order
        self.linger.after_poll(len(records), max_records)
        kafka_io.set_fetch_wait(self.consumer, self.fetch_wait.after_poll(len(records)))
        if records:
            self.record_bytes = max(1.0, sum(len(r.value or b"") for r in records) / len(records))
        return records

    def commit(self, how: Commit) -> None:
        if how is Commit.SYNC:
            self.consumer.commit()
        elif how is Commit.ASYNC:
            self.consumer.commit_async()

    def lags(self) -> dict[tuple[str, int], int]:
        return consumer_lags(self.consumer)

    def close(self) -> None:
        self.consumer.close()


def consumer_lags(consumer: KafkaConsumer) -> dict[tuple[str, int], int]:
    """Lag per assigned partition: the fetch high watermark minus the position (../shared/BROKER.md)."""
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        position = consumer.position(tp, timeout_ms=0) if highwater is not None else None
        lag = metrics.lag_of(highwater, position)
        if lag is not None:
            lags[(tp.topic, tp.partition)] = lag
    return lags


def record_consumer(service: str, consumer: KafkaConsumer) -> None:
    """The consumer's lag and the process's memory, into the metrics."""
    metrics.record_consumer(service, consumer_lags(consumer))


class Stopper:
    """Turns SIGTERM and SIGINT into a flag the loop checks between batches (graceful shutdown)."""

    def __init__(self, install: bool = True) -> None:
        self.stopped = False
        if install:
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True


class Stopped(BaseException):  # not an Exception: no handler or poison path may swallow it
    """Asked to stop while waiting to retry: the batch is left uncommitted, read again at the next start."""


def start_service(service: str) -> tuple[Settings, str, Stopper]:
    """Settings, logging, the broker reachable and the topics there: (settings, incarnation, stopper)."""
    settings = Settings()
    setup_logging(settings, service)
    kafka_io.wait_until_reachable(settings)
    return settings, kafka_io.ensure_topics(settings), Stopper()


def tune_gc() -> None:
    """Fewer garbage collections for batch services: the objects made at startup (modules, pydantic
    schemas, clients) move out of the collector's sight, and a young generation of 100,000 objects holds
    a whole batch of events and profiles, so most of them die young without being traced many times.
    benchmarks/fold.py, four runs on a busy machine: the fold alone 1.5-1.8x as fast; with each profile
    loaded from and dumped to JSON per batch, -12% to +28% (within the noise)."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def release_free_memory() -> None:
    """Hand the free pages of the C heap back to the system. glibc keeps what a burst freed (a catch-up
    after a broker rollover folds full batches): without this the profile service stayed ~40 MB higher
    after each burst (benchmarks/soak.py). A no-op where the C library has no ``malloc_trim``."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


class Every:
    """Calls ``action`` when called at least ``interval_s`` after its last run (the first call runs it)."""

    def __init__(self, interval_s: float, action: Callable[[], Any]) -> None:
        self.interval_s, self.action, self.due = interval_s, action, 0.0

    def __call__(self) -> None:
        if time.monotonic() >= self.due:
            self.due = time.monotonic() + self.interval_s
            self.action()


@dataclass(frozen=True)
class Backoff:
    """Waits between tries of a batch that failed retryably: ``first_s`` doubling up to ``max_s``."""

    first_s: float = 0.2
    max_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.first_s * 2 ** (attempt - 1), self.max_s))


DEFAULT_BACKOFF = Backoff()


def poison_letter(service: str, record: Any, exc: BaseException, now: datetime) -> Outcome:
    """The dead letter of a record its handler fails on by itself: the exception is the reason, where it
    was raised (module:function:line) the location."""
    if isinstance(exc, Poison):
        reason, location = exc.reason, exc.location
    else:
        reason, location = f"{type(exc).__name__}: {exc}"[:500], raised_at(exc)
    value = build(
        reason=reason,
        location=location,
        source=source_of_topic(record.topic),
        original=bytes(record.value or b""),
        received_at=now,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )
    label = f"handler error: {type(exc).__name__}"
    return Outcome((DeadLetter(value, label), Count({f"{service}.deadletters": 1})), Commit.SYNC)


def raised_at(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "handler"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.name}:{last.lineno}"


class Runtime:
    """Runs one handler over a ``Source``, carrying out its effects on a ``Sink``."""

    def __init__(
        self,
        service: str,
        source: Source,
        sink: Sink,
        handler: Handler,
        clock: Clock,
        stopper: Stopper,
        backoff: Backoff = DEFAULT_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service, self.source, self.sink, self.handler = service, source, sink, handler
        self.clock, self.stopper, self.backoff, self.sleep = clock, stopper, backoff, sleep
        self.retries = 0  # batches tried again after a retryable error (for tests and logs)

    def perform(self, effects: Sequence[Effect]) -> None:
        """Carry out effects now (those a store must see inside its transaction)."""
        self.sink.carry_out(effects)

    def run(self, batch_size: int, between: Callable[[], Any] | None = None) -> None:
        """Poll, process, commit until stopped, with ``between`` (periodic work that must not run during a
        batch) after every poll and the lag and memory metrics every second; then close the source."""
        tune_gc()
        meter = Every(METER_INTERVAL_S, lambda: metrics.record_consumer(self.service, self.source.lags()))
        trim = Every(TRIM_INTERVAL_S, release_free_memory)
        try:
            while not self.stopper.stopped:
                batch = self.source.poll(batch_size)
                if batch:
                    self.process(batch)
                if between is not None:
                    between()
                meter()
                trim()
        except Stopped:
            log.info("%s stopped while waiting to retry a batch (left uncommitted)", self.service)
        finally:
            self.source.close()
            log.info("%s stopped", self.service)

    def process(self, batch: list[Any]) -> None:
        """Handle a batch, carry out its effects and commit it; a batch that fails with poison is handled
        again a record at a time, and a record that fails alone is dead-lettered."""
        started = time.monotonic()
        try:
            commit = self._retrying(batch)
        except Exception as exc:  # poison somewhere in the batch
            commit = self._one_at_a_time(batch, exc)
        self.source.commit(commit)
        metrics.BATCH_SECONDS.labels(self.service).observe(time.monotonic() - started)

    def _one_at_a_time(self, batch: list[Any], exc: Exception) -> Commit:
        if len(batch) == 1:
            return self._dead_letter(batch[0], exc)
        log.warning("%s: a batch of %d failed (%r); handling it a record at a time", self.service, len(batch), exc)
        commits = set()
        for record in batch:
            try:
                commits.add(self._retrying([record]))
            except Exception as one:
                commits.add(self._dead_letter(record, one))
        return Commit.SYNC if Commit.SYNC in commits else Commit.ASYNC if Commit.ASYNC in commits else Commit.NONE

    def _dead_letter(self, record: Any, exc: Exception) -> Commit:
        outcome = poison_letter(self.service, record, exc, self.clock())
        log.error(
            "poison %s[%d]@%d: %r",
            record.topic,
            record.partition,
            record.offset,
            exc,
            exc_info=exc,
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        self._retrying_effects(outcome.effects)
        return Commit.SYNC

    def _retrying(self, batch: list[Any]) -> Commit:
        """Handle the batch and carry out its effects, again and again while that fails retryably."""
        attempt = 0
        while True:
            try:
                outcome = self.handler(batch, self.clock())
                self.sink.carry_out(outcome.effects)
                return outcome.commit
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                attempt += 1
                self._wait(attempt, exc)

    def _retrying_effects(self, effects: Sequence[Effect]) -> None:
        attempt = 0
        while True:
            try:
                self.sink.carry_out(effects)
                return
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                attempt += 1
                self._wait(attempt, exc)

    def _wait(self, attempt: int, exc: Exception) -> None:
        delay = self.backoff.delay(attempt)
        self.retries += 1
        log.warning("%s: %r; trying the same batch again in %.1f s (attempt %d)", self.service, exc, delay, attempt)
        waited = 0.0
        while waited < delay:
            if self.stopper.stopped:
                raise Stopped()
            step = min(0.1, delay - waited)
            self.sleep(step)
            waited += step
