"""Thin kafka-python plumbing shared by the services: clients, topic creation, incarnation."""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import DefaultPartitioner

from crmhub.core.errors import ServerUnavailable
from crmhub.core.settings import Settings
from crmhub.core.topics import DEADLETTER, META, new_run_id, topic_specs

SESSION_TIMEOUT_MS = 6000  # Tansu joins a group after about half the session timeout (BROKER.md)
# Tansu 0.6 answers a fetch that found nothing late when a record arrives, up to its wait (a record sent to
# a waiting aiokafka consumer arrived after 480 ms with a 1,500 ms wait, after 4 ms with 20 ms): every
# consumer's hop would add up to the wait. Real Kafka answers at once either way. See FetchWait.
FETCH_MAX_WAIT_MS = 20  # while records come
IDLE_FETCH_WAIT_MS = 200  # once none came for IDLE_AFTER_S
IDLE_AFTER_S = 2.0
LINGER_FROM = 10  # records in a poll from which the consumer lingers (see Linger)


class FetchWait:
    """How long a consumer's next fetch may wait at the broker: :data:`FETCH_MAX_WAIT_MS` while records
    come, :data:`IDLE_FETCH_WAIT_MS` once none came for :data:`IDLE_AFTER_S`.

    Why not one wait: on Tansu a short wait keeps a busy pipeline's hops short, but an idle consumer then
    asks fifty times a second, and an idle hub spent about half a core on it (docs/benchmarks.md,
    "2026-12-07, late"): a small shop's server, busy with nothing. The price of the idle wait is paid once
    per quiet spell, by its first record (up to 200 ms more per hop); on Kafka not at all. kafka-python's
    alone: the faust workers keep the short wait (``faust_fixes``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_records = clock()

    def after_poll(self, records: int) -> int:
        """The wait for the fetches after a poll that returned ``records`` records."""
        now = self.clock()
        if records:
            self.last_records = now
        return FETCH_MAX_WAIT_MS if now - self.last_records < IDLE_AFTER_S else IDLE_FETCH_WAIT_MS


class Linger:
    """A consumer's linger (what ``linger.ms`` is to a producer): after a poll that brought some records but
    not a full batch, the next poll waits until ``linger_s`` after that one began, so that the records
    arriving meanwhile are handled as one batch. A poll of fewer than :data:`LINGER_FROM` records is a quiet
    moment (the next poll goes at once: no latency is added at low rates), a full one a consumer behind
    (it goes at once too). Records, not bytes: the profile service's records each hold a batch of
    events, so it seldom lingers; made to linger by bytes (from 4 KB) it handled no larger batches at
    1,000 events/s (it lingered in step with ingest's batches) and spent as much CPU per event.

    Why: each batch costs a service a fixed part (a commit, a flush, Redis round trips, a fetch the broker
    answers) whatever it holds. Polling as fast as records came, ingest at 1,000 events/s handled ~32
    events a batch and spent ~320 µs of CPU per event, ~190 with a 100 ms linger (100 a batch), and the
    broker ~300 against ~250 (docs/benchmarks.md, "2026-12-07, night"): a fifth of a core on a 2-core
    machine, for up to ``linger_s`` more per hop. Kafka's own knob for it (``fetch.min.bytes``) is no
    help on Tansu, which answers a waiting fetch when its wait is over."""

    def __init__(
        self, linger_s: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.linger_s, self.clock, self.sleep = linger_s, clock, sleep
        self.started, self.hold = clock(), False

    def before_poll(self) -> None:
        """Wait out the rest of the linger if the last poll called for it."""
        if self.hold and (rest := self.started + self.linger_s - self.clock()) > 0:
            self.sleep(rest)
        self.started = self.clock()

    def after_poll(self, records: int, max_records: int) -> None:
        self.hold = LINGER_FROM <= records < max_records


def set_fetch_wait(consumer: KafkaConsumer, wait_ms: int) -> None:
    """The wait of a kafka-python consumer's next fetches: its fetcher reads it from its config for each
    fetch it sends (kafka-python has no public setter)."""
    consumer._fetcher.config["fetch_max_wait_ms"] = wait_ms


def wait_until_reachable(settings: Settings, timeout_s: float = 30.0) -> None:
    """Fail fast with a clear message when no bootstrap server accepts TCP connections."""
    hosts = [h.strip().rpartition(":") for h in settings.bootstrap_servers.split(",") if h.strip()]
    deadline = time.monotonic() + timeout_s
    while True:
        for host, _, port in hosts:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                if sock.connect_ex((host or "127.0.0.1", int(port or 9092))) == 0:
                    return
        if time.monotonic() >= deadline:
            raise ServerUnavailable(
                f"no Kafka broker answers at {settings.bootstrap_servers} (CRMHUB_KAFKA_URL / --kafka-url)"
            )
        time.sleep(0.25)


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


@functools.lru_cache(maxsize=64)
def _words(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}I")


def murmur2_fast(data: bytes) -> int:
    """Kafka's murmur2 (Java ``Utils.murmur2``), bit for bit the same as kafka-python's ``murmur2`` but
    about 3x faster: the 4-byte words are unpacked at once and redundant masks are dropped."""
    length = len(data)
    h = 0x9747B28C ^ length
    for k in _words(length >> 2).unpack_from(data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@functools.lru_cache(maxsize=200_000)
def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) picks for ``key``, memoised."""
    return (murmur2_fast(key) & 0x7FFFFFFF) % partitions


class CachedPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (Java-compatible murmur2), memoised: murmur2 runs in pure
    Python on every send, and a hub sends the same customer keys again and again."""

    def partition(
        self, topic: str, key: Any, serialized_key: bytes | None, value: Any, serialized_value: Any, cluster: Any
    ) -> int:
        if serialized_key is None:
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        all_partitions = sorted(cluster.partitions_for_topic(topic))
        return int(all_partitions[partition_for_key(bytes(serialized_key), len(all_partitions))])


def json_array(docs: list[bytes]) -> bytes:
    """Serialised JSON documents joined into one JSON array, without re-serialising them."""
    return b"[" + b",".join(docs) + b"]"


BATCH_RECORD_ITEMS = 500  # most items one batched record (crm.events.v1, crm.profile-changes.v1) holds


def send_batched(producer: KafkaProducer, topic: str, items: list[tuple[str, bytes]], partitions: int) -> None:
    """Send (key, JSON document) items as JSON-array records, one or more per partition. Each item goes
    to the partition a record keyed by its key would go to, in order: everything about one key stays on
    one partition, and a consumer pays per-record client cost once per batch instead of once per item."""
    by_partition: dict[int, list[bytes]] = {}
    for key, doc in items:
        by_partition.setdefault(partition_for_key(key.encode(), partitions), []).append(doc)
    for partition, docs in by_partition.items():
        for start in range(0, len(docs), BATCH_RECORD_ITEMS):
            producer.send(topic, value=json_array(docs[start : start + BATCH_RECORD_ITEMS]), partition=partition)


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "acks": 1,
        "enable_idempotence": False,  # effects are idempotent instead (Tansu: see BROKER.md)
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "client_id": "crmhub",
        "partitioner": CachedPartitioner(),
    }
    options.update(overrides)
    try:
        return KafkaProducer(**options)
    except KafkaError as exc:
        raise ServerUnavailable(f"no Kafka broker answers at {settings.bootstrap_servers}") from exc


def consumer(settings: Settings, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": 1500,
        "max_poll_records": settings.batch_size,
        "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "client_id": "crmhub",
    }
    options.update(overrides)
    try:
        return KafkaConsumer(**options)
    except KafkaError as exc:
        raise ServerUnavailable(f"no Kafka broker answers at {settings.bootstrap_servers}") from exc


def topic_configs(name: str, compacted: bool, retention_days: int) -> dict[str, str]:
    """A new topic's configuration: compaction, and the dead letters' retention (their inputs are
    personal data; see crmhub/retention.py)."""
    if compacted:
        return {"cleanup.policy": "compact"}
    if name == DEADLETTER and retention_days:
        return {"retention.ms": str(retention_days * 86_400_000)}
    return {}


def ensure_topics(settings: Settings) -> str:
    """Create every crmhub topic that is missing; return the incarnation (run id) of the topics."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="crmhub-admin")
    except KafkaError as exc:
        raise ServerUnavailable(f"no Kafka broker answers at {settings.bootstrap_servers}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=1,
                topic_configs=topic_configs(s.name, s.compacted, settings.retention_days),
            )
            for s in topic_specs(settings.partitions)
            if s.name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created concurrently elsewhere: fine
                admin.create_topics(missing)
    finally:
        admin.close()
    run_id = read_incarnation(settings, wait_s=0.5)
    if run_id is None:
        prod = producer(settings)
        prod.send(META, key=b"incarnation", value=new_run_id().encode())
        prod.flush()
        prod.close()
        run_id = read_incarnation(settings, wait_s=10)
    if run_id is None:
        raise ServerUnavailable(f"could not read back {META} from {settings.bootstrap_servers}")
    return run_id


def read_incarnation(settings: Settings, wait_s: float = 10.0) -> str | None:
    """The first record of ``crm.meta.v1``: the run id written when the topics were created."""
    cons = consumer(settings, None, enable_auto_commit=False)
    tp = TopicPartition(META, 0)
    try:
        cons.assign([tp])
        cons.seek_to_beginning(tp)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for records in cons.poll(timeout_ms=100).values():
                for record in records:
                    return bytes(record.value).decode()
        return None
    except KafkaError as exc:
        raise ServerUnavailable(f"Kafka at {settings.bootstrap_servers}: {exc}") from exc
    finally:
        cons.close()
