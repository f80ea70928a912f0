"""Durable intake on the embedded stack: the collector's inputs go to the journal (fsync'd, then the 2xx)
and a forwarder thread produces them, in journal order, to their raw topics.

- :class:`GroupCommit` batches the appends of concurrent requests: one write and one fsync for all that
  arrived while the previous fsync ran (the cost of durability is one fsync per group, not per request).
- :class:`Forwarder` produces each record with a ``journal_seq`` header (ingest claims the event id for
  that journal place, so the same input produced again is recognised as itself, see
  :mod:`services.ingest.app`), retries what the broker did not acknowledge, and remembers how far it got
  in ``<journal>/state.json`` together with the broker's incarnation. A new incarnation (the embedded
  broker restarted, with nothing in it) sends everything again from the first record not known to be
  folded into the profile store; the profile store skips the inputs it folded already
  (``folded_inputs``), so nothing is lost and nothing counts twice.
- Backpressure: when more than ``max_unforwarded`` records wait for the broker, or the journal cannot be
  written, the collector answers 503 with ``Retry-After`` (:class:`IntakeUnavailable`); SDKs retry it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from crmhub.core.errors import ServerUnavailable
from crmhub.core.journal import Entry, Journal, Reader

log = logging.getLogger("crmhub.intake")
SEQ_HEADER = "journal_seq"
RETRY_S = 1.0
HOLD_FILE = "intake.hold"  # in the data dir while the hub rolls the broker over: journal, do not forward


def hold_path(data_dir: Path) -> Path:
    return data_dir / HOLD_FILE


class IntakeUnavailable(ServerUnavailable):
    """The input cannot be made durable now: answer 503 with ``Retry-After``."""

    def __init__(self, message: str, retry_after_s: int = 2) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class IntakeState:
    """What survives an API restart: the broker incarnation forwarded to, the last seq it acknowledged,
    and the last seq known folded (the journal is trimmed up to it)."""

    incarnation: str = ""
    forwarded: int = 0
    folded: int = 0

    @classmethod
    def load(cls, path: Path) -> IntakeState:
        try:
            return cls(**orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError, TypeError):
            return cls()

    def save(self, path: Path) -> None:
        """Write atomically (a temporary file renamed over the old one)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(asdict(self)))
        os.replace(tmp, path)

    def resume_from(self, incarnation: str) -> int:
        """The first seq to produce: after the last acknowledged one on the same broker incarnation, or
        after the last folded one on a new broker (which lost whatever it held)."""
        return (self.forwarded if incarnation == self.incarnation else self.folded) + 1


class Forwarder(threading.Thread):
    """Produces the journal's records to their topics in order, from a start seq on, until stopped."""

    def __init__(
        self,
        journal: Journal,
        producer: KafkaProducer,
        state_path: Path,
        incarnation: str,
        max_ahead: int,
        held: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(name="crmhub-forwarder", daemon=True)
        self.journal, self.producer, self.state_path = journal, producer, state_path
        self.held = held  # while true, records wait in the journal (the broker is being replaced)
        self.max_ahead = max_ahead  # records in the broker not yet known folded: the rest waits in the journal
        self.state = IntakeState.load(state_path)
        start = self.state.resume_from(incarnation)
        if start <= journal.last_seq:
            log.info("forwarding the journal from seq %d (last %d)", start, journal.last_seq)
        self.reader = Reader(journal, start)
        self.state.incarnation = incarnation
        self.state.forwarded = start - 1
        # the highest offset acknowledged per raw (topic, partition): a checkpoint's targets
        self.acked_offsets: dict[tuple[str, int], int] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()

    @property
    def forwarded(self) -> int:
        return self.state.forwarded

    def unforwarded(self) -> int:
        return self.journal.last_seq - self.state.forwarded

    def run(self) -> None:
        while not self.stopping.is_set():
            if self.held():
                self.stopping.wait(0.1)
                continue
            if self.journal.last_seq < self.reader.next_seq:
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            room = self.max_ahead - (self.state.forwarded - self.state.folded)
            if room <= 0:  # the broker holds enough the stages have not folded yet
                self.stopping.wait(0.1)
                continue
            chunk = self.reader.read(min(5000, room))
            if not chunk:
                self.stopping.wait(0.05)
                continue
            try:
                self._forward(chunk)
            except KafkaError as exc:  # the broker is away: the records wait in the journal
                log.warning("forwarding from seq %d failed, retrying: %s", chunk[0][0], exc)
                self.reader = Reader(self.journal, chunk[0][0])  # the whole chunk again
                self.stopping.wait(RETRY_S)
        self.producer.flush(timeout=10)
        self._save()

    def _forward(self, chunk: list[tuple[int, Entry]]) -> None:
        """Produce ``chunk`` and wait for the broker's acknowledgements (raises if one failed: the chunk is
        produced again, and a record produced twice is recognised downstream by its journal seq)."""
        if not chunk:
            return
        futures = [
            self.producer.send(e.topic, key=e.key, value=e.value, headers=[*e.headers, (SEQ_HEADER, b"%d" % seq)])
            for seq, e in chunk
        ]
        self.producer.flush(timeout=30)
        metas = [f.get(timeout=0) for f in futures]  # raises the first failure: the chunk is sent again
        with self.lock:
            for meta in metas:
                tp = (meta.topic, meta.partition)
                self.acked_offsets[tp] = max(self.acked_offsets.get(tp, -1), meta.offset)
            self.state.forwarded = chunk[-1][0]
        self._save()

    def checkpoint(self) -> tuple[int, dict[tuple[str, int], int]]:
        """(last acknowledged seq, acknowledged raw offsets): every record up to that seq is in the broker
        at or below those offsets."""
        with self.lock:
            return self.state.forwarded, dict(self.acked_offsets)

    def folded_through(self, seq: int) -> None:
        """Every record up to ``seq`` is folded: remember it and trim the journal."""
        with self.lock:
            self.state.folded = max(self.state.folded, seq)
        self._save()
        self.journal.trim(seq)

    def _save(self) -> None:
        with self.lock:
            self.state.save(self.state_path)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.join(timeout=30)


class GroupCommit:
    """Appends of concurrent requests to the journal, one write and fsync per group (asyncio)."""

    def __init__(self, journal: Journal, forwarder: Forwarder, max_unforwarded: int) -> None:
        self.journal, self.forwarder, self.max_unforwarded = journal, forwarder, max_unforwarded
        self._pending: list[tuple[Sequence[Entry], asyncio.Future[int]]] = []
        self._writing = False

    async def append(self, entries: Sequence[Entry]) -> int:
        """Make ``entries`` durable; the seq of the last one. Raises :class:`IntakeUnavailable`."""
        behind = self.forwarder.unforwarded()
        if behind > self.max_unforwarded:
            raise IntakeUnavailable(f"{behind} accepted inputs wait for the broker; try again shortly")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((entries, future))
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._write_groups())
        return await future

    async def _write_groups(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    last = await asyncio.to_thread(self.journal.append, [e for entries, _ in group for e in entries])
                except OSError as exc:
                    log.error("the journal could not be written: %s", exc)
                    for _, future in group:
                        future.set_exception(IntakeUnavailable(f"the intake journal cannot be written: {exc}"))
                    continue
                self.forwarder.wake.set()
                end = last
                for entries, future in reversed(group):
                    future.set_result(end)
                    end -= len(entries)
        finally:
            self._writing = False


def wait_forwarded(forwarder: Forwarder, seq: int, timeout_s: float) -> bool:
    """Whether the forwarder acknowledged ``seq`` within ``timeout_s`` (for tests and a clean stop)."""
    deadline = time.monotonic() + timeout_s
    while forwarder.forwarded < seq:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
