"""The durable intake of the API process (embedded broker only): the journal, its forwarder and the
checkpoints that trim it (see :mod:`crmhub.core.intake` and :mod:`crmhub.core.checkpoint`).

It lives in the composition root because a checkpoint reads two services' progress: ingest's committed
offsets (its consumer group in the broker) and the offsets the profile store saved with the profiles.
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import TopicPartition
from kafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from crmhub.core import kafka as kafka_io
from crmhub.core.checkpoint import Progress, RawPartition, passed_ingest
from crmhub.core.intake import Forwarder, GroupCommit, hold_path
from crmhub.core.journal import Journal
from crmhub.core.settings import Settings
from crmhub.core.topics import EVENTS
from services.ingest.app import GROUP_ID as INGEST_GROUP
from services.profile.app import GROUP_ID as PROFILE_GROUP
from services.profile.store import ProfileStore

log = logging.getLogger("crmhub.intake")
CHECKPOINT_S = 2.0


class Intake:
    """Start with :meth:`start`, stop with :meth:`stop`; the collector appends through ``commit``."""

    def __init__(self, settings: Settings, store: ProfileStore) -> None:
        self.settings, self.store = settings, store
        self.incarnation = kafka_io.ensure_topics(settings)
        self.journal = Journal(settings.data_dir / "journal")
        producer = kafka_io.producer(settings, linger_ms=2)
        state = self.journal.directory / "state.json"
        hold = hold_path(settings.data_dir)
        self.forwarder = Forwarder(
            self.journal, producer, state, self.incarnation, settings.intake_max_ahead, held=hold.exists
        )
        self.commit = GroupCommit(self.journal, self.forwarder, settings.intake_max_unforwarded)
        self.progress = Progress(folded=self.forwarder.state.folded)
        self._consumer = kafka_io.consumer(settings, INGEST_GROUP, enable_auto_commit=False)
        self._stopping = threading.Event()
        self._checkpoints = threading.Thread(target=self._run, name="crmhub-checkpoints", daemon=True)

    def start(self) -> None:
        self.forwarder.start()
        self._checkpoints.start()

    def stop(self) -> None:
        self._stopping.set()
        self._checkpoints.join(timeout=10)
        self.forwarder.stop()
        self.journal.close()
        self._consumer.close()

    def _run(self) -> None:
        while not self._stopping.wait(CHECKPOINT_S):
            try:
                self.tick()
            except (KafkaError, SQLAlchemyError, OSError) as exc:  # a server away: the next round tries again
                log.warning("intake checkpoint skipped: %s", exc)

    def tick(self) -> None:
        """Take a checkpoint, move the oldest one on that ingest passed, trim what the profile store folded."""
        self.progress = self.progress.taken(*self.forwarder.checkpoint())
        cp = self.progress.waiting_for_ingest()
        if cp is not None and passed_ingest(cp, self._ingest_committed(list(cp.raw))):
            self.progress = self.progress.ingest_passed(cp, self._events_ends())
        stored = self.store.offsets(PROFILE_GROUP, EVENTS, self.incarnation)
        before, self.progress = self.progress.folded, self.progress.profile_reached(stored)
        if self.progress.folded > before:
            self.forwarder.folded_through(self.progress.folded)
            self.store.forget_folded_inputs(self.progress.folded)

    def _ingest_committed(self, partitions: list[RawPartition]) -> dict[RawPartition, int]:
        found = {}
        for topic, part in partitions:
            offset = self._consumer.committed(TopicPartition(topic, part))
            if offset is not None:
                found[(topic, part)] = offset
        return found

    def _events_ends(self, timeout_s: float = 5.0) -> dict[int, int]:
        """The true end offsets of crm.events.v1: the high watermarks fetch responses carry (Tansu's
        ListOffsets under-reports them, ../shared/BROKER.md), read from where the profile store is."""
        parts = [TopicPartition(EVENTS, p) for p in range(self.settings.partitions)]
        stored = self.store.offsets(PROFILE_GROUP, EVENTS, self.incarnation)
        consumer = kafka_io.consumer(self.settings, None, enable_auto_commit=False)  # new: no old watermarks
        try:
            consumer.assign(parts)
            for tp in parts:
                consumer.seek(tp, stored.get(tp.partition, 0))
            deadline = time.monotonic() + timeout_s
            while any(consumer.highwater(tp) is None for tp in parts):
                if time.monotonic() > deadline:
                    raise KafkaError("no high watermark of crm.events.v1 within 5 s")
                consumer.poll(timeout_ms=100, max_records=1)
            return {tp.partition: int(consumer.highwater(tp)) for tp in parts}
        finally:
            consumer.close()
