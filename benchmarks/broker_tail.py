"""The embedded broker alone, filling: its CPU per record while one producer writes at a steady rate and
one consumer reads at the tail, printed every ``--every`` seconds with how much it holds.

Tansu keeps every record in memory and serves each fetch from what it holds (BROKER.md). A hub at 1,000
events/s fell behind after a few minutes as its broker's CPU per event doubled (docs/benchmarks.md,
"2026-12-08, later"); this shows the broker's share without the hub around it, and whether the consumer
keeps getting records as the partitions take more batches.

    python benchmarks/broker_tail.py                        # 2,000 records/s of 1 KB for 240 s
    python benchmarks/broker_tail.py --rate 500 --linger-ms 0
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from measure import cpu_s

from crmhub.core.metrics import rss_mb
from crmhub.core.net import free_port
from crmhub.embedded import embedded_kafka

TOPIC, PARTITIONS = "tail", 4


def read_tail(address: str, counter: list[int], min_bytes: int) -> None:
    """Count what a consumer of the topic gets, for as long as the process lives."""
    consumer = KafkaConsumer(
        TOPIC, bootstrap_servers=address, group_id="tail", fetch_max_wait_ms=20, fetch_min_bytes=min_bytes
    )
    while True:
        for records in consumer.poll(200).values():
            counter[0] += len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=2000, help="records/s")
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--size", type=int, default=1000, help="bytes a record")
    parser.add_argument("--linger-ms", type=int, default=5, help="the producer's linger")
    parser.add_argument("--fetch-min-bytes", type=int, default=1, help="the consumer's fetch.min.bytes")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between lines")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, embedded_kafka(port, Path(tmp) / "tansu.log") as broker:
        assert broker.proc is not None
        address, pid = broker.address, broker.proc.pid
        KafkaAdminClient(bootstrap_servers=address).create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        read = [0]
        threading.Thread(target=read_tail, args=(address, read, args.fetch_min_bytes), daemon=True).start()
        producer = KafkaProducer(bootstrap_servers=address, linger_ms=args.linger_ms)
        value, sent = os.urandom(args.size), 0
        started = last_at = time.monotonic()
        last_cpu, last_sent = cpu_s(pid), 0
        print("   s     sent     read  broker MB  broker µs/record (since the last line)")
        while (now := time.monotonic()) - started < args.seconds:
            while sent < (now - started) * args.rate:
                producer.send(TOPIC, key=str(sent % 1000).encode(), value=value)
                sent += 1
            if now - last_at >= args.every:
                cpu = cpu_s(pid)
                per_record = (cpu - last_cpu) / max(1, sent - last_sent) * 1e6
                print(f"{now - started:4.0f} {sent:8,} {read[0]:8,} {rss_mb(pid) or 0:10.0f} {per_record:17.1f}")
                last_at, last_cpu, last_sent = now, cpu, sent
            time.sleep(0.002)
        producer.close()


if __name__ == "__main__":
    main()
