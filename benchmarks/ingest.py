"""Ingest alone against the raw kafka-python rate, measured in the same run on the embedded stack.

1. raw: one process consumes N pre-published messages with kafka-python and produces each to another
   topic (no decoding): the ceiling of any kafka-python stage on this machine.
2. ingest: N synthetic raw inputs are published first; then the ingest service starts and is timed
   until it has validated, deduplicated, resolved and forwarded (or dead-lettered) all of them.

    python benchmarks/ingest.py --events 50000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic

from crmhub import kafka as kafka_io
from crmhub.demo.traffic import RetailSimulator
from crmhub.embedded import free_port
from crmhub.hub import SERVICES, Hub, running_hub
from crmhub.settings import Settings
from crmhub.stats import read_counts
from crmhub.topics import raw_topic


def publish_raw(hub: Hub, n: int, seed: int) -> None:
    sim = RetailSimulator(seed=seed, customers=20_000, bad_fraction=0.0)
    producer = kafka_io.producer(hub.settings, linger_ms=20)
    for start in range(0, n, 1000):
        for item in sim.next_batch(datetime.now(UTC), min(1000, n - start)):
            value = item.payload if isinstance(item.payload, bytes) else orjson.dumps(item.payload)
            producer.send(raw_topic(item.source), key=item.key.encode(), value=value)
    producer.flush()
    producer.close()


def raw_copy_rate(hub: Hub, n: int, run: int) -> float:
    """kafka-python consume + produce of n ~300-byte messages, no decoding: messages/s."""
    src, dst = f"bench.raw.src.{run}", f"bench.raw.dst.{run}"
    admin = KafkaAdminClient(bootstrap_servers=hub.settings.bootstrap_servers)
    admin.create_topics([NewTopic(t, num_partitions=hub.settings.partitions, replication_factor=1) for t in (src, dst)])
    admin.close()
    producer = kafka_io.producer(hub.settings, linger_ms=20)
    payload = b"x" * 300
    for i in range(n):
        producer.send(src, key=str(i % 5000).encode(), value=payload)
    producer.flush()
    consumer = kafka_io.consumer(hub.settings, None)
    parts = [TopicPartition(src, p) for p in range(hub.settings.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    copied, started = 0, time.monotonic()
    while copied < n:
        for records in consumer.poll(timeout_ms=100, max_records=2000).values():
            for record in records:
                producer.send(dst, key=record.key, value=record.value)
            copied += len(records)
    producer.flush()
    took = time.monotonic() - started
    consumer.close()
    producer.close()
    return n / took


def ingest_rate(hub: Hub, n: int, timeout_s: float) -> float:
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    base = read_counts(r)
    done_before = base.get("ingest.out", 0) + base.get("ingest.deadletters", 0) + base.get("ingest.duplicates", 0)
    child = hub.spawn("ingest", SERVICES["ingest"])
    first: float | None = None
    first_done = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        c = read_counts(r)
        done = c.get("ingest.out", 0) + c.get("ingest.deadletters", 0) + c.get("ingest.duplicates", 0) - done_before
        if done > 0 and first is None:
            first = time.monotonic()  # from the first batch handled: group join is not ingest's work
            first_done = done
        if done >= n and first is not None:
            rate = (done - first_done) / (time.monotonic() - first)
            child.proc.terminate()
            child.proc.wait(timeout=30)
            hub.children.remove(child)
            return rate
        time.sleep(0.02)
    raise SystemExit(f"ingest did not finish {n} inputs in {timeout_s:.0f} s: {read_counts(r)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="crmhub-bench-ingest-"))
    settings = Settings(data_dir=data_dir, kafka_port=free_port(), redis_port=free_port(), api_port=free_port())
    raw_rates, ingest_rates = [], []
    with running_hub(settings, services=()) as hub:
        for run in range(args.runs):
            raw = raw_copy_rate(hub, args.events, run)
            publish_raw(hub, args.events, seed=1000 + run)
            ing = ingest_rate(hub, args.events, args.timeout)
            raw_rates.append(raw)
            ingest_rates.append(ing)
            print(
                f"run {run + 1}: raw kafka-python consume+produce {raw:,.0f}/s · ingest {ing:,.0f} events/s "
                f"({100 * ing / raw:.0f}% of raw)",
                flush=True,
            )
    raw_m, ing_m = statistics.median(raw_rates), statistics.median(ingest_rates)
    print(
        f"median: raw {raw_m:,.0f}/s · ingest {ing_m:,.0f} events/s = {100 * ing_m / raw_m:.0f}% of raw (target ≥ 60%)"
    )


if __name__ == "__main__":
    main()
