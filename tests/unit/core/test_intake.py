"""Group commit (one fsync for concurrent requests), backpressure, and where forwarding resumes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from crmhub.core.intake import Forwarder, GroupCommit, IntakeState, IntakeUnavailable, wait_forwarded
from crmhub.core.journal import Entry, Journal, Reader


class CountingJournal(Journal):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.appends = 0

    def append(self, entries: list[Entry]) -> int:  # type: ignore[override]
        self.appends += 1
        return super().append(entries)


class IdleForwarder:
    """Stands in for the forwarder thread: how far behind it is, and its wake-up event."""

    def __init__(self, behind: int = 0) -> None:
        self.behind = behind
        self.wake = threading.Event()

    def unforwarded(self) -> int:
        return self.behind


def requests(n: int) -> list[list[Entry]]:
    return [[Entry("crm.raw.web.v1", None, b"r%d-%d" % (r, i)) for i in range(r % 3 + 1)] for r in range(n)]


def test_concurrent_requests_share_fsyncs_and_each_learns_its_last_seq(tmp_path: Path) -> None:
    journal = CountingJournal(tmp_path)
    forwarder = IdleForwarder()
    commit = GroupCommit(journal, forwarder, max_unforwarded=1000)  # type: ignore[arg-type]
    batches = requests(60)

    async def send_all() -> list[int]:
        return await asyncio.gather(*(commit.append(b) for b in batches))

    lasts = asyncio.run(send_all())
    assert journal.appends < len(batches)  # grouped
    records = dict(Reader(journal, 1).read(1000))
    for batch, last in zip(batches, lasts, strict=True):
        assert [records[seq] for seq in range(last - len(batch) + 1, last + 1)] == batch
    assert forwarder.wake.is_set()


def test_too_much_waiting_for_the_broker_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    commit = GroupCommit(journal, IdleForwarder(behind=11), max_unforwarded=10)  # type: ignore[arg-type]
    with pytest.raises(IntakeUnavailable, match="wait for the broker"):
        asyncio.run(commit.append([Entry("t", None, b"x")]))
    assert journal.last_seq == 0


def test_forwarding_resumes_after_the_last_acknowledged_seq_on_the_same_broker() -> None:
    assert IntakeState("run-1", forwarded=40, folded=25).resume_from("run-1") == 41


def test_a_new_broker_gets_everything_not_known_folded_again() -> None:
    assert IntakeState("run-1", forwarded=40, folded=25).resume_from("run-2") == 26


def test_state_survives_a_restart_and_a_missing_file_means_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert IntakeState.load(path) == IntakeState()
    IntakeState("run-1", 7, 3).save(path)
    assert IntakeState.load(path) == IntakeState("run-1", 7, 3)


class RecordingProducer:
    """Stands in for the Kafka producer: acknowledges every record at once, in order per topic."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, topic: str, key: bytes | None, value: bytes, headers: object) -> object:
        self.sent.append(value)
        meta = type("Meta", (), {"topic": topic, "partition": 0, "offset": len(self.sent) - 1})()
        return type("Done", (), {"get": lambda self, timeout: meta})()

    def flush(self, timeout: float | None = None) -> None:
        pass


def test_the_forwarder_keeps_at_most_max_ahead_unfolded_records_in_the_broker(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append([Entry("crm.raw.web.v1", None, b"r%d" % i) for i in range(25)])
    producer = RecordingProducer()
    forwarder = Forwarder(journal, producer, tmp_path / "state.json", "run-1", max_ahead=10)  # type: ignore[arg-type]
    forwarder.start()
    try:
        assert wait_forwarded(forwarder, 10, timeout_s=5)
        assert not wait_forwarded(forwarder, 11, timeout_s=0.5)  # the rest waits in the journal
        forwarder.folded_through(8)
        assert wait_forwarded(forwarder, 18, timeout_s=5)
        assert not wait_forwarded(forwarder, 19, timeout_s=0.5)
        forwarder.folded_through(25)
        assert wait_forwarded(forwarder, 25, timeout_s=5)
    finally:
        forwarder.stop()
    assert producer.sent == [b"r%d" % i for i in range(25)]


def test_a_held_forwarder_leaves_the_records_in_the_journal_until_released(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append([Entry("crm.raw.web.v1", None, b"r%d" % i) for i in range(5)])
    producer = RecordingProducer()
    hold = tmp_path / "hold"
    hold.touch()
    forwarder = Forwarder(journal, producer, tmp_path / "state.json", "run-1", 10, held=hold.exists)  # type: ignore[arg-type]
    forwarder.start()
    try:
        assert not wait_forwarded(forwarder, 1, timeout_s=0.5)
        hold.unlink()
        assert wait_forwarded(forwarder, 5, timeout_s=5)
    finally:
        forwarder.stop()
    assert producer.sent == [b"r%d" % i for i in range(5)]
