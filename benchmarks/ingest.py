"""Ingest alone against the raw kafka-python rate, measured in the same run on the embedded stack.

1. raw: one process consumes N messages with kafka-python and produces each to another topic (no
   decoding): the ceiling of any kafka-python stage on this machine. It copies the very inputs ingest
   reads (the raw topics: same records, sizes and partitions); ``--raw synthetic`` copies N ~300-byte
   messages from a 4-partition topic instead (the figure this benchmark reported before).
2. ingest: warm-up + N synthetic raw inputs are published first; then the ingest service starts and is
   timed, once it has handled the warm-up inputs, until it has validated, deduplicated, resolved and
   forwarded (or dead-lettered) the N others: its steady state, not its first seconds (first-call costs,
   cold caches). Both rates are timed from the end of the first batch handled after that point.

    python benchmarks/ingest.py --events 50000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from measure import ingested  # benchmarks/measure.py

from crmhub.core import kafka as kafka_io
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.stats import read_counts
from crmhub.core.topics import RAW_TOPICS, raw_topic
from crmhub.demo.traffic import RetailSimulator
from crmhub.hub import SERVICES, Hub, running_hub


def publish_raw(hub: Hub, n: int, seed: int) -> None:
    sim = RetailSimulator(seed=seed, customers=20_000, bad_fraction=0.0)
    producer = kafka_io.producer(hub.settings, linger_ms=20)
    for start in range(0, n, 1000):
        for item in sim.next_batch(datetime.now(UTC), min(1000, n - start)):
            value = item.payload if isinstance(item.payload, bytes) else orjson.dumps(item.payload)
            producer.send(raw_topic(item.source), key=item.key.encode(), value=value)
    producer.flush()
    producer.close()


def copy_records(hub: Hub, consumer: KafkaConsumer, dst: str, n: int) -> float:
    """Copy records from ``consumer`` to ``dst`` until n are copied: messages/s, timed like ingest from
    the end of the first batch (no decoding, one send per record, one flush at the end); from the start
    when the first batch held them all (a small n)."""
    producer = kafka_io.producer(hub.settings, linger_ms=20)
    copied, started, timed_from = 0, 0.0, 0
    begun = time.monotonic()
    while copied < n:
        for records in consumer.poll(timeout_ms=100, max_records=hub.settings.batch_size).values():
            for record in records:
                producer.send(dst, key=record.key, value=record.value)
            copied += len(records)
        if copied and not started:
            started, timed_from = time.monotonic(), copied
    producer.flush()
    if copied == timed_from:
        started, timed_from = begun, 0
    took = time.monotonic() - started
    consumer.close()
    producer.close()
    return (copied - timed_from) / took


def raw_copy_rate(hub: Hub, n: int, run: int) -> float:
    """kafka-python consume + produce of n synthetic ~300-byte messages, no decoding: messages/s."""
    src, dst = f"bench.raw.src.{run}", f"bench.raw.dst.{run}"
    admin = KafkaAdminClient(bootstrap_servers=hub.settings.bootstrap_servers)
    admin.create_topics([NewTopic(t, num_partitions=hub.settings.partitions, replication_factor=1) for t in (src, dst)])
    admin.close()
    producer = kafka_io.producer(hub.settings, linger_ms=20)
    payload = b"x" * 300
    for i in range(n):
        producer.send(src, key=str(i % 5000).encode(), value=payload)
    producer.flush()
    producer.close()
    consumer = kafka_io.consumer(hub.settings, None)
    parts = [TopicPartition(src, p) for p in range(hub.settings.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    return copy_records(hub, consumer, dst, n)


def raw_inputs_copy_rate(hub: Hub, n: int, run: int) -> float:
    """kafka-python consume + produce of the first n raw inputs (what ingest reads), no decoding."""
    dst = f"bench.raw.inputs.{run}"
    admin = KafkaAdminClient(bootstrap_servers=hub.settings.bootstrap_servers)
    admin.create_topics([NewTopic(dst, num_partitions=hub.settings.partitions, replication_factor=1)])
    admin.close()
    consumer = kafka_io.consumer(hub.settings, None)
    parts = [TopicPartition(t, p) for t in RAW_TOPICS for p in range(hub.settings.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    return copy_records(hub, consumer, dst, n)


def ingest_rate(hub: Hub, n: int, warmup: int, timeout_s: float) -> float:
    """Start ingest over warm-up + n published inputs; its rate over the n after the warm-up ones."""
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    base = read_counts(r)
    done_before = ingested(base)
    child = hub.spawn("ingest", SERVICES["ingest"])
    first: float | None = None
    first_done = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        c = read_counts(r)
        done = ingested(c) - done_before
        if done > warmup and first is None:
            # from the first batch handled after the warm-up: group join, first calls and cold caches
            # are not ingest's steady-state work
            first = time.monotonic()
            first_done = done
        if done >= warmup + n and first is not None:
            rate = (done - first_done) / (time.monotonic() - first)
            child.proc.terminate()
            child.proc.wait(timeout=30)
            hub.children.remove(child)
            return rate
        time.sleep(0.02)
    raise SystemExit(f"ingest did not finish {warmup + n} inputs in {timeout_s:.0f} s: {read_counts(r)}")


@dataclass
class Rates:
    """Per run: the raw copy of the inputs (or the synthetic one), ingest, the synthetic copy (if made)."""

    raw: list[float] = field(default_factory=list)
    ingest: list[float] = field(default_factory=list)
    synthetic: list[float] = field(default_factory=list)

    def ratio(self) -> float:
        """The median of the per-run ratios ingest / raw."""
        return statistics.median(i / r for i, r in zip(self.ingest, self.raw, strict=True))


def measure(events: int, warmup: int, runs: int, raw: str, timeout_s: float) -> Rates:
    """``runs`` runs on one embedded stack (Tansu and Redis; ingest started for each run)."""
    data_dir = Path(tempfile.mkdtemp(prefix="crmhub-bench-ingest-"))
    settings = Settings(data_dir=data_dir, kafka_port=free_port(), redis_port=free_port(), api_port=free_port())
    rates = Rates()
    with running_hub(settings, services=()) as hub:
        for run in range(runs):
            if raw in ("synthetic", "both"):
                rates.synthetic.append(raw_copy_rate(hub, events, run))
            publish_raw(hub, warmup + events, seed=1000 + run)
            rates.raw.append(raw_inputs_copy_rate(hub, events, run) if raw != "synthetic" else rates.synthetic[-1])
            rates.ingest.append(ingest_rate(hub, events, warmup, timeout_s))
            ing = rates.ingest[-1]
            line = (
                f"run {run + 1}: raw kafka-python consume+produce {rates.raw[-1]:,.0f}/s · ingest "
                f"{ing:,.0f} events/s ({100 * ing / rates.raw[-1]:.0f}% of raw)"
            )
            if raw == "both":
                line += f" · synthetic copy {rates.synthetic[-1]:,.0f}/s ({100 * ing / rates.synthetic[-1]:.0f}%)"
            print(line, flush=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=10_000, help="inputs ingest handles before it is timed")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--raw",
        choices=("inputs", "synthetic", "both"),
        default="both",
        help="what the raw copy copies; the ratio is against 'inputs' unless only 'synthetic'",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    rates = measure(args.events, args.warmup, args.runs, args.raw, args.timeout)
    raw_m, ing_m = statistics.median(rates.raw), statistics.median(rates.ingest)
    print(
        f"median: raw {raw_m:,.0f}/s · ingest {ing_m:,.0f} events/s = {100 * ing_m / raw_m:.0f}% of raw "
        f"(median of the per-run ratios {100 * rates.ratio():.0f}%; target ≥ 60%)"
    )
    if args.raw == "both":
        syn_m = statistics.median(rates.synthetic)
        print(f"        synthetic 300-byte copy {syn_m:,.0f}/s: ingest = {100 * ing_m / syn_m:.0f}% of it")


if __name__ == "__main__":
    main()
