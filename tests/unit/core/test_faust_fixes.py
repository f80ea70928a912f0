"""The faust corrections in ``crmhub.core.faust_fixes``: a flush that drains, a resume that drops nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer
from faust.types import TP

from crmhub.core.faust_app import PRODUCER_LINGER_S, create_app
from crmhub.core.faust_fixes import Progress, Recovery, TableManager, Watchdog, drain, getmany, stalled
from crmhub.core.kafka import FETCH_MAX_WAIT_MS
from crmhub.core.settings import Settings


class StallingBuffer:
    """A producer buffer whose broker stalls (no message sent within 0.1 s) twice before each send."""

    def __init__(self, size: int) -> None:
        self.size, self.calls = size, 0

    async def flush_atmost(self, max_messages: int | None) -> int:
        self.calls += 1
        if self.calls % 3:
            return 0  # faust's flush stopped here, with messages still unsent
        self.size -= 1
        return 1


def test_the_producer_buffer_is_flushed_until_it_is_empty() -> None:
    assert ProducerBuffer.flush is drain
    buffer = StallingBuffer(size=4)
    asyncio.run(drain(buffer))  # type: ignore[arg-type]
    assert buffer.size == 0 and buffer.calls == 12


class Steps:
    """What the recovery did, in order, to the consumer and flow control."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.assigned = {TP("crm.profile-changes.v1", 0), TP("crmhub-notifier-abandonment-changelog", 0)}

    def assignment(self) -> set[TP]:
        return self.assigned

    async def perform_seek(self) -> None:
        self.done.append("seek")

    def resume_partitions(self, tps: set[TP]) -> None:
        self.done.append("resume " + ",".join(sorted(tp.topic for tp in tps)))

    def resume_flow(self) -> None:
        self.done.append("flow")


def test_stream_partitions_resume_only_after_the_queues_are_cleared_and_seeked(tmp_path: Path) -> None:
    app = create_app("crmhub-notifier", Settings(data_dir=tmp_path, kafka_url="127.0.0.1:9"))
    app.Table("abandonment", default=None)
    assert isinstance(app.tables, TableManager) and isinstance(app.tables.recovery, Recovery)
    steps = Steps()
    app._consumer = steps  # type: ignore[assignment]
    flow: Any = app.flow_control
    flow.resume = lambda: steps.done.append("clear queues")

    async def started() -> None:
        steps.done.append("fetcher")

    app.__dict__["_fetcher"] = SimpleNamespace(maybe_start=started)  # faust's is a cached property
    recovery: Any = app.tables.recovery
    recovery._wait = lambda coro, timeout=None: coro  # the service is not started: await the step itself
    tables: Any = app.tables  # what the tables hear once the streams run
    tables.on_actives_ready = lambda: steps.done.append("actives ready")
    tables.on_standbys_ready = lambda: steps.done.append("standbys ready")
    asyncio.run(recovery.start_streams(standbys_ready=True))
    # a record fetched before the queues are cleared would be dropped unhandled: none can be, the stream
    # partition is resumed last (and the changelog partition is left to the recovery)
    assert steps.done[:5] == ["clear queues", "seek", "resume crm.profile-changes.v1", "flow", "fetcher"]
    assert steps.done[5:] == ["actives ready", "standbys ready"]


class Fetching:
    """A consumer whose fetch returns ``records`` (tp -> offsets) and pauses ``paused_meanwhile`` while it
    waits, as recovery does from the main thread while the consumer thread fetches."""

    def __init__(self, records: dict[TP, list[int]], active: set[TP], paused_meanwhile: set[TP]) -> None:
        self.records, self.active, self.paused_meanwhile = records, active, paused_meanwhile
        monitor = SimpleNamespace(track_tp_end_offset=lambda tp, offset: None)
        self.app = SimpleNamespace(consumer_generation_id=1, monitor=monitor)
        self.flow_active, self.should_stop = True, False
        self._buffered_partitions: set[TP] = set()
        self.scheduler = SimpleNamespace(iterate=lambda rs: ((tp, r) for tp, batch in rs.items() for r in batch))
        self.log = SimpleNamespace(info=lambda *args: None)
        self.sought: list[tuple[TP, int]] = []

    async def _wait_next_records(self, timeout: float) -> tuple[dict[TP, list[Any]], set[TP]]:
        fetched = {tp: [SimpleNamespace(offset=o) for o in offsets] for tp, offsets in self.records.items()}
        self.active -= self.paused_meanwhile
        return fetched, self.active

    def assignment(self) -> set[TP]:
        return set(self.records)

    def highwater(self, tp: TP) -> int:
        return 99

    def _to_message(self, tp: TP, record: Any) -> int:
        return int(record.offset)

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))


def test_records_of_a_partition_paused_while_they_were_fetched_are_fetched_again() -> None:
    stream, changelog = TP("crm.profile-changes.v1", 0), TP("crmhub-notifier-abandonment-changelog", 0)
    consumer = Fetching({stream: [2, 3], changelog: [7]}, active={stream, changelog}, paused_meanwhile={stream})

    async def handed_on() -> list[tuple[TP, Any]]:
        return [(tp, message) async for tp, message in getmany(consumer, timeout=1.0)]  # type: ignore[arg-type]

    assert asyncio.run(handed_on()) == [(changelog, 7)]
    assert consumer.sought == [(stream, 2)]  # faust skipped them unsaid: read on from offset 4
    assert Consumer.getmany is getmany


def test_a_batch_cut_short_by_a_new_generation_is_fetched_again_from_where_it_stopped() -> None:
    stream = TP("crm.profile-changes.v1", 1)
    consumer = Fetching({stream: [5, 6, 7]}, active={stream}, paused_meanwhile=set())
    seen: list[Any] = []

    async def hand_on() -> None:
        async for _, message in getmany(consumer, timeout=1.0):  # type: ignore[arg-type]
            seen.append(message)
            consumer.app.consumer_generation_id = 2  # a rebalance began while the agent handled it

    asyncio.run(hand_on())
    assert seen == [5] and consumer.sought == [(stream, 6)]


def test_a_partition_is_stalled_when_nothing_moved_between_two_looks_and_none_of_it_is_in_the_worker() -> None:
    a, b, c, d = (TP("crm.profile-changes.v1", n) for n in range(4))
    before = {a: Progress(2, 3, False), b: Progress(2, 3, True), c: Progress(5, 5, False), d: Progress(1, 3, False)}
    now = {a: Progress(2, 3, False), b: Progress(2, 3, True), c: Progress(5, 5, False), d: Progress(2, 3, False)}
    # a: a record to read, none in the worker, no progress; b: its record is being handled; c: nothing to
    # read; d: moved since the last look
    assert stalled(before, now) == [a]
    assert stalled({}, now) == [] and stalled(before, {a: Progress(None, 3, False)}) == []


class Worker:
    """A worker whose consumer has fetched the record at offset 2 of ``tp`` and lost it."""

    def __init__(self, tp: TP) -> None:
        self.rebalancing, self.sought = False, list[tuple[TP, int]]()
        self.producer = SimpleNamespace(buffer=SimpleNamespace(size=0, max_messages=1000))
        self.topics = SimpleNamespace(_tp_index={tp: [SimpleNamespace(queue=asyncio.Queue[Any]())]})
        self.consumer = SimpleNamespace(
            flow_active=True,
            _commit_fut=None,
            _unacked_messages=set(),
            _committed_offset={tp: 2},
            _get_active_partitions=lambda: {tp},
            _is_changelog_tp=lambda tp: False,
            highwater=lambda tp: 3,
            seek=self.seek,
        )

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))


def test_the_watchdog_fetches_a_stalled_partition_again_at_its_committed_offset() -> None:
    tp = TP("crm.profile-changes.v1", 2)
    worker = Worker(tp)
    watchdog = Watchdog(worker)

    async def look(times: int) -> None:
        for _ in range(times):
            await watchdog()

    asyncio.run(look(1))
    assert worker.sought == []  # one look tells nothing
    asyncio.run(look(1))
    assert worker.sought == [(tp, 2)]
    asyncio.run(look(1))
    assert worker.sought == [(tp, 2)]  # sought once, then looked at afresh


@pytest.mark.parametrize("waiting", ["a commit under way", "the producer's buffer full"])
def test_the_watchdog_does_not_judge_a_partition_while_the_worker_waits_on_something_else(waiting: str) -> None:
    tp = TP("crm.profile-changes.v1", 2)
    worker = Worker(tp)
    watchdog = Watchdog(worker)
    if waiting == "a commit under way":  # a commit that outlasts two looks holds the offsets still
        worker.consumer._commit_fut = object()  # faust's future of the commit under way
    else:  # faust holds the record it fetched last until the buffer has ebbed
        worker.producer.buffer.size = 1001

    async def look(times: int) -> None:
        for _ in range(times):
            await watchdog()

    asyncio.run(look(3))
    assert worker.sought == []
    worker.consumer._commit_fut, worker.producer.buffer.size = None, 0
    asyncio.run(look(2))
    assert worker.sought == [(tp, 2)]


def test_faust_workers_fetch_as_briefly_as_crmhubs_others_and_produce_batches_tansu_can_serve(
    tmp_path: Path,
) -> None:
    app = create_app("crmhub-notifier", Settings(data_dir=tmp_path, kafka_url="127.0.0.1:9"))
    assert app.conf.producer_linger == PRODUCER_LINGER_S == 0.005

    async def created() -> Any:
        consumer: Any = app.consumer
        return consumer._thread._create_worker_consumer(app.transport)

    made = asyncio.run(created())
    assert made._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 20
