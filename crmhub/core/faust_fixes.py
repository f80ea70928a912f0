"""Three faust-streaming defects (0.15.3, and its master) that lose records, corrected, a broker's defect
faust's table recovery trips on, corrected, and a watchdog.

**Commits over unsent changelog records.** Before it commits the input offsets, faust flushes its
producer, but ``ProducerBuffer.flush`` returns as soon as 0.1 s pass without a message sent, with
messages still in the buffer: table changes (the notifier's timers) whose input is then committed. A
kill after that loses them for good. :func:`drain` replaces it: the buffer is flushed until it is empty
(while the broker is away, the commit waits for it).

**Records fetched while the streams resume.** When a worker has recovered its tables after a (re)start
or a rebalance, faust resumes the stream partitions while the consumer's flow is already active, seeks
them to their committed offsets, and only then resumes flow control, which *clears every agent's
queue*. A record the fetcher delivered in between (the seek is a broker round trip) is dropped after its
read offset moved past it: the agent never handles it, and once later records are handled their acks
are committed over it (faust takes a one-offset gap at the head of its acks for a compacted topic).

**Records fetched for a partition that is paused by then.** faust hands aiokafka its *live* set of
active partitions, and aiokafka returns the records of every partition when that set is empty (the
consumer runs in a thread of its own, so the set changes while the fetch waits: recovery pauses every
partition, then resumes the changelogs, pauses them, resumes the streams). faust then skips, without a
word, each record whose partition is not active *now*, and it breaks off a batch when the flow stops or
the generation changes: aiokafka's read position has already moved past those records. If no seek
follows, the agent never handles them: one way a restarted notifier can lose a fresh profile change as
it did in CI (test_delivery, about one run in 14). :func:`fetch_active` gives aiokafka a copy of the set, and
:func:`getmany` seeks every partition whose records it did not hand on back to the first of them.

**A partition that stalls anyway.** That CI failure was not reproduced here (40 restarts of a
notifier, 14 runs of the test; the refetch above was never needed), so the third correction is not
known to be its cause. :class:`Watchdog` keeps the promise whatever faust's next such path is: a stream
partition with records to read whose committed offset has not moved between two looks, with none of its
records in the worker (unacked or queued for an agent), is sought back to that offset, with a warning
saying what was seen (``tests/integration/test_faust_watchdog.py`` makes a worker lose a record). It does
not look while the worker waits on something else (:meth:`Watchdog.waiting`): a commit under way (18 s
seen, a loaded notifier's producer buffer draining first), or a producer buffer over its size, while which
faust holds the record it fetched last, in no queue, until the buffer has ebbed; the committed offsets
stand still meanwhile. Under a load of 100,000 profiles it took both for stalls, every 10-20 s, and sought
a dozen partitions back each time: records handled twice (the outbox drops the repeated messages, but
the work is done again by a notifier already behind), and worse, a record handed on again is acked
without leaving faust's set of records in the worker (its offset was acked already), so the lag counted
it for good and a broker rollover, which waits for every lag to be 0, would have waited for ever
(:func:`unacknowledged` leaves acknowledged records out).

**A changelog's end, under-reported.** faust recovers a table until the end offsets ListOffsets gives,
and Tansu answers with the base offset of the partition's last *batch* + 1 (``../shared/BROKER.md``): the
other records of that batch would never be recovered. :func:`log_ends` reads the true end, the high
watermark a fetch answers with, as kafka-python's lag figures already do. So faust's producer batches:
the workaround before it, every changelog record its own batch (``producer_max_batch_size=1``), capped the
notifier's sends at one record per broker round trip per partition (~1,500 records/s here against ~60,000
batched). The broker-rollover test failure that kept it on was not the batching (docs/benchmarks.md,
2026-12-07).

**A fetch that waits 1.5 s.** faust builds its consumer with ``fetch_max_wait_ms=1500`` (no setting), and
Tansu answers a fetch that found nothing only when the wait is over, not when a record arrives: a record
reaching a faust worker that had caught up waited ~0.5 s for it. :func:`short_fetch_wait` gives faust's
consumer the 20 ms of crmhub's kafka-python consumers (:data:`crmhub.core.kafka.FETCH_MAX_WAIT_MS`), and
keeps it when idle: aiokafka's first record after a quiet spell came later the longer the wait (median 30
ms with 200 ms against 11 ms with 20; kafka-python's 17 ms either way), so the idle wait of
:class:`crmhub.core.kafka.FetchWait` is kafka-python's alone.

The first two were found by reading faust while looking for lost alerts (issue 16) and neither was
caught in the act: a stress run of a killed and restarted table worker (10-15 kills, 12,000 records)
lost nothing with or without them. :class:`Recovery` does the resume in the order that cannot drop
anything: clear the queues (of what was fetched before the rebalance) while every stream partition is
still paused, seek, and only then resume the partitions. Nothing is fetched from them before the seek,
so nothing is handled twice either. :class:`TableManager` is faust's own with this recovery;
``create_app`` configures it and the watchdog. The corrections are tested in
``tests/unit/core/test_faust_fixes.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Set
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from faust.exceptions import ConsumerNotStarted
from faust.tables.manager import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery
from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer
from faust.types import TP, ConsumerT, Message

from crmhub.core.kafka import FETCH_MAX_WAIT_MS

log = logging.getLogger("crmhub")
WATCHDOG_LOOK_S = 10.0  # a stalled partition is fetched again 10-20 s after it stalled
LOG_END_WAIT_S = 10.0


async def drain(self: ProducerBuffer) -> None:
    """Flush until the buffer is empty (faust's ``flush`` may stop short: see the module's doc)."""
    while self.size:
        await self.flush_atmost(None)


ProducerBuffer.flush = drain  # type: ignore[method-assign]
# The table writes an agent may leave in the buffer before its stream waits for them to go out (faust: 100,
# with a warning each time): the notifier writes a batch of records' table changes at once (hundreds)
ProducerBuffer.max_messages = 5_000

_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def short_fetch_wait(self: AIOKafkaConsumerThread, transport: Any) -> AIOKafkaConsumer:
    """faust's consumer, with the fetch wait of crmhub's others (faust's is 1,500 ms, not configurable):
    on Tansu the wait is what a record waits for whenever its consumer had caught up."""
    consumer = _worker_consumer(self, transport)
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
    return consumer


AIOKafkaConsumerThread._create_worker_consumer = short_fetch_wait  # type: ignore[method-assign]

_thread_getmany = ThreadDelegateConsumer._getmany


async def fetch_active(self: ThreadDelegateConsumer, active_partitions: set[TP] | None, timeout: float) -> Any:
    """Fetch the partitions active *now* (faust passed its live set: see the module's doc)."""
    frozen = None if active_partitions is None else set(active_partitions)
    return await _thread_getmany(self, frozen, timeout)


ThreadDelegateConsumer._getmany = fetch_active  # type: ignore[method-assign]


async def getmany(self: Consumer, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
    """faust's ``getmany``, except that a record fetched and not handed on is fetched again."""
    records, active = await self._wait_next_records(timeout)
    generation = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    if not self.flow_active:  # faust's own answer: every record of the batch is fetched again
        try:
            await self.perform_seek()
        except Exception as exc:  # faust logs it too: the next rebalance seeks again
            self.log.warning("exception performing seek when flow not active %r", exc)
        return
    skipped: dict[TP, int] = {}
    for tp, record in self.scheduler.iterate(records):
        if tp in skipped or not _hands_on(self, tp, active, generation):
            skipped.setdefault(tp, record.offset)
            continue
        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        yield tp, self._to_message(tp, record)
    await _fetch_again(self, skipped)


def _hands_on(consumer: Consumer, tp: TP, active: set[TP] | None, generation: int) -> bool:
    """faust's test: the flow runs, the generation is the fetch's, the partition is active (or buffered)."""
    if not consumer.flow_active or consumer.app.consumer_generation_id != generation:
        return False
    return active is None or tp in active or tp in consumer._buffered_partitions


async def _fetch_again(consumer: Consumer, skipped: dict[TP, int]) -> None:
    assigned = consumer.assignment()
    for tp, offset in skipped.items():
        if tp not in assigned:
            continue  # revoked: its next owner starts from the committed offset
        consumer.log.info("Fetching %s again from offset %d (not handed on: paused meanwhile)", tp, offset)
        with contextlib.suppress(IllegalStateError):  # a rebalance is under way: it seeks them all
            await consumer.seek(tp, offset)


Consumer.getmany = getmany  # type: ignore[method-assign]


async def log_ends(bootstrap: str, ends: Mapping[TP, int]) -> dict[TP, int]:
    """The true end offset of each partition, given the end offsets ListOffsets answered: the high watermark
    of a fetch from the last batch (``ends[tp] - 1``), which is right on every broker."""
    found = {tp: end for tp, end in ends.items() if end <= 0}  # empty: no batch to read past
    asked = {TopicPartition(tp.topic, tp.partition): tp for tp in ends if tp not in found}
    if not asked:
        return found
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_bytes=1 << 20)
    await consumer.start()
    try:
        consumer.assign(list(asked))
        for atp, tp in asked.items():
            consumer.seek(atp, ends[tp] - 1)
        deadline = asyncio.get_running_loop().time() + LOG_END_WAIT_S
        while any(consumer.highwater(atp) is None for atp in asked):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no high watermark for {[str(a) for a in asked if consumer.highwater(a) is None]}")
            await consumer.getmany(timeout_ms=200)
        return found | {tp: max(ends[tp], consumer.highwater(atp)) for atp, tp in asked.items()}
    finally:
        await consumer.stop()


class Recovery(FaustRecovery):
    async def _build_highwaters(self, consumer: ConsumerT, tps: Set[TP], destination: Any, title: str) -> None:
        """faust's, from the true ends (:func:`log_ends`) of the changelog partitions."""
        ends = await consumer.highwaters(*tps)
        bootstrap = ",".join(f"{url.host}:{url.port}" for url in self.app.conf.broker)
        true = await log_ends(bootstrap, {tp: end for tp, end in ends.items() if end is not None})
        self.log.info("Highwater for %s changelog partitions: %s", title, sorted(true.items()))
        destination.clear()
        destination.update({tp: true[tp] - 1 if tp in true else -1 for tp in ends})  # faust's -1: its offsets

    async def _resume_streams(self, generation_id: int = 0) -> None:
        """A worker without tables: the streams start once the rebalance is complete."""
        await self.app.on_rebalance_complete.send()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self.start_streams(standbys_ready=True)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """The tables are recovered: tell them, then start the streams."""
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        done = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if done:
            await asyncio.wait(done)
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again (generation %r, not %r)", self.app.consumer_generation_id, generation_id
            )
            return
        await self.start_streams(standbys_ready=not self.app.assignor.assigned_standbys())

    async def start_streams(self, standbys_ready: bool) -> None:
        """Clear the agents' queues, seek the paused stream partitions to their committed offsets, resume
        them; then the tables are ready (the standbys too when none are assigned) and the rebalance ends."""
        consumer = self.app.consumer
        assignment = consumer.assignment()
        self.app.flow_control.resume()  # clears the queues: nothing of a stream partition is fetched yet
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        streams: set[TP] = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        consumer.resume_partitions(streams)
        self.completed.set()
        consumer.resume_flow()
        fetcher: Any = self.app._fetcher  # type: ignore[attr-defined]
        await fetcher.maybe_start()
        self.tables.on_actives_ready()
        if standbys_ready:
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


@dataclass(frozen=True)
class Progress:
    """What a worker knows of one of its stream partitions."""

    committed: int | None  # the next offset the group reads (None: nothing committed yet)
    highwater: int  # the next offset to be written
    busy: bool  # a record of it is in the worker: unacked, or queued for an agent


def stalled(before: Mapping[TP, Progress], now: Mapping[TP, Progress]) -> list[TP]:
    """Partitions with records to read that were neither handled nor in the worker since the last look."""
    return [
        tp
        for tp, p in now.items()
        if p.committed is not None and p.highwater > p.committed and not p.busy and before.get(tp) == p
    ]


class Watchdog:
    """Looks at the worker's stream partitions at each call (a faust timer); seeks a stalled one back."""

    def __init__(self, app: Any) -> None:
        self.app, self.seen = app, dict[TP, Progress]()

    async def __call__(self) -> None:
        try:
            looking = self.app.consumer.flow_active and not self.app.rebalancing and not self.waiting()
            now = self.progress() if looking else {}
            for tp in stalled(self.seen, now):
                p = now.pop(tp)  # looked at afresh next time
                log.warning(
                    "%s stalled at offset %s (end %d, none in the worker): fetching again", tp, p.committed, p.highwater
                )
                await self.app.consumer.seek(tp, p.committed)
        except (ConsumerNotStarted, IllegalStateError):
            now = {}  # starting, or a rebalance began: it seeks every partition itself
        self.seen = now

    def waiting(self) -> bool:
        """The worker waits on something else than its inputs, and its committed offsets stand still
        meanwhile however well it goes: a commit under way, or its producer's buffer over its size (faust
        then holds the record it fetched last, not yet handed to an agent, until the buffer has ebbed)."""
        buffer = self.app.producer.buffer
        return self.app.consumer._commit_fut is not None or buffer.size > buffer.max_messages

    def progress(self) -> dict[TP, Progress]:
        consumer = self.app.consumer
        unacked = unacknowledged(consumer)
        queues = self.app.topics._tp_index
        progress = {}
        for tp in consumer._get_active_partitions():
            highwater = consumer.highwater(tp)
            if highwater is not None and not consumer._is_changelog_tp(tp):
                busy = tp in unacked or any(chan.queue.qsize() for chan in queues.get(tp, ()))
                progress[tp] = Progress(consumer._committed_offset.get(tp), highwater, busy)
        return progress


def unacknowledged(consumer: Any) -> Counter[TP]:
    """Per partition, the records the consumer handed to the streams that were not acknowledged yet.

    faust's own set of them (which its graceful stop waits on), less those it acknowledged: a record
    handed on a second time (fetched again after a seek) keeps its place in that set when it is acked,
    because its offset was acked already, and would count as in the worker for good."""
    return Counter(message.tp for message in list(consumer._unacked_messages) if not message.acked)


class TableManager(FaustTableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery  # type: ignore[return-value]
