"""The faust tables carried from one embedded broker to the next.

The notifier's tables (journey enrollments and waits, the abandonment and complaint SLA alerts' among them) live in
changelog topics, and the embedded broker keeps topics in memory only: a new broker (a hub restart, or a
rollover that keeps the broker within its memory budget, :mod:`crmhub.broker_budget`) starts without them.
With every faust service stopped, the hub reads each changelog to its end, keeps the last value per key
(a table's state: tombstones drop the key), and writes it into the new broker's changelogs before the
services start again; faust then recovers the tables from them as after any restart, to each partition's
true end (:func:`crmhub.core.faust_fixes.log_ends`), so the records go in batches like any others.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from crmhub.core import kafka as kafka_io
from crmhub.core.errors import ServerUnavailable
from crmhub.core.settings import Settings

log = logging.getLogger("crmhub.broker")

CHANGELOG_SUFFIX = "-changelog"
SAVED = "broker-tables.json"  # in the data dir: the tables a stopped hub carries to its next start


@dataclass
class Changelog:
    """One changelog topic's table state: (partition, key) -> the key's last value."""

    topic: str
    partitions: int
    state: dict[tuple[int, bytes], bytes] = field(default_factory=dict)

    def apply(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self.state.pop((partition, key), None)
        else:
            self.state[(partition, key)] = value

    def by_partition(self) -> dict[int, list[tuple[bytes, bytes]]]:
        parts: dict[int, list[tuple[bytes, bytes]]] = {}
        for (part, key), value in self.state.items():
            parts.setdefault(part, []).append((key, value))
        return parts


def read_changelogs(settings: Settings, timeout_s: float = 120.0) -> list[Changelog]:
    """Every changelog topic of the broker, read to its end (its writers stopped). ``timeout_s``: the most
    seconds without a record before the end, not for the whole read (100,000 customers in journeys took
    longer than 30 s to read at a stop)."""
    consumer = kafka_io.consumer(settings, None, enable_auto_commit=False)
    try:
        logs = {
            t: Changelog(t, len(consumer.partitions_for_topic(t) or ()))
            for t in sorted(consumer.topics())
            if t.endswith(CHANGELOG_SUFFIX)
        }
        parts = [TopicPartition(t, p) for t, cl in logs.items() for p in range(cl.partitions)]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + timeout_s
        while not _at_end(consumer, parts):
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"the changelogs stopped coming for {timeout_s:.0f} s before their end")
            for tp, records in consumer.poll(timeout_ms=200, max_records=5000).items():
                deadline = time.monotonic() + timeout_s
                for record in records:
                    logs[tp.topic].apply(tp.partition, record.key, record.value)
        return list(logs.values())
    finally:
        consumer.close()


def _at_end(consumer: KafkaConsumer, parts: list[TopicPartition]) -> bool:
    """Every partition read up to the high watermark its last fetch brought (none yet: not at the end)."""
    for tp in parts:
        highwater = consumer.highwater(tp)
        if highwater is None or consumer.position(tp) < highwater:
            return False
    return True


def write_changelogs(settings: Settings, logs: list[Changelog]) -> int:
    """Create the changelog topics on a new broker and write their state; how many records."""
    if not logs:
        return 0
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="crmhub-tables")
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(cl.topic, num_partitions=cl.partitions, replication_factor=1, topic_configs=_COMPACT)
            for cl in logs
            if cl.topic not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
    finally:
        admin.close()
    producer = kafka_io.producer(settings, linger_ms=5)
    try:
        sent = [
            producer.send(cl.topic, key=key, value=value, partition=part)
            for cl in logs
            for part, items in sorted(cl.by_partition().items())
            for key, value in items
        ]
        producer.flush()
        for future in sent:
            future.get()  # a record the broker refused is an error of the rollover, not a table entry lost
    finally:
        producer.close()
    return sum(len(cl.state) for cl in logs)


_COMPACT = {"cleanup.policy": "compact"}


def save(path: Path, logs: list[Changelog]) -> None:
    """Write the tables to ``path`` atomically (a stop that is killed half-way leaves the old file or none)."""
    doc = [
        {
            "topic": cl.topic,
            "partitions": cl.partitions,
            "state": [[p, _b64(k), _b64(v)] for (p, k), v in cl.state.items()],
        }
        for cl in logs
    ]
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(orjson.dumps(doc))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load(path: Path) -> list[Changelog]:
    logs = []
    for item in orjson.loads(path.read_bytes()):
        cl = Changelog(item["topic"], item["partitions"])
        cl.state = {(p, base64.b64decode(k)): base64.b64decode(v) for p, k, v in item["state"]}
        logs.append(cl)
    return logs


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def carry_saved(settings: Settings) -> int:
    """At start, on a new broker: write the tables the last stop saved, then forget them (a later
    crash must not bring back this older state); how many records."""
    path = settings.data_dir / SAVED
    if not path.exists():
        return 0
    written = write_changelogs(settings, load(path))
    path.unlink()
    return written


def save_at_stop(settings: Settings) -> None:
    """After the services stopped: keep the tables for the next start. A broker that does not answer
    any more leaves nothing saved: the next start rebuilds the timers as after a crash."""
    try:
        logs = read_changelogs(settings, timeout_s=30)
    except (ServerUnavailable, KafkaError) as exc:
        log.warning("the faust tables were not saved at the stop: %s", exc)
        return
    if any(changelog.state for changelog in logs):
        save(settings.data_dir / SAVED, logs)
        log.info("the faust tables saved for the next start: %d records", sum(len(c.state) for c in logs))
