"""Soak benchmark: the whole hub on the embedded stack at a steady rate for a long time.

It answers "can a small shop run this for months?": the resident memory of every process (the broker,
Redis, each service, the API) sampled over the run, how fast each still grows in the second half (a
process that levels off grows ~0 MB/min there), and what one input event costs the broker, in bytes per
event on each topic (the broker keeps every record in memory: see ../shared/BROKER.md).

    python benchmarks/soak.py --rate 500 --minutes 20 --sample-seconds 30

The demo's traffic generator publishes to the raw topics (paced; the figure printed is what was offered
and sent); a side consumer reads every topic from its beginning and adds up the bytes the broker holds
(keys, values and headers of the records; the broker's own overhead per record is not counted).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis
from kafka import KafkaConsumer, TopicPartition
from measure import process_rss  # benchmarks/measure.py

from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.demo.traffic import RetailSimulator
from crmhub.hub import running_hub
from crmhub.publish import ApiPublisher


class TopicMeter(threading.Thread):
    """Reads every topic of the broker from its beginning, adding up records and bytes per topic, over the
    first broker incarnation: a rollover empties the broker, so the meter counts until the hub starts the
    first one (``rolled()``), reads on while the services drain the old broker, and stops there; ``events``
    is what the publisher had sent then (the API stops taking inputs at that moment)."""

    def __init__(self, settings: Settings, rolled: Callable[[], bool], sent: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
        self.rolled, self.sent = rolled, sent
        self.events: int | None = None  # inputs the counts stand for, once the first rollover began
        self.bytes: Counter[str] = Counter()
        self.records: Counter[str] = Counter()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def assign_all(self) -> None:
        topics = self.consumer.topics()
        parts = [TopicPartition(t, p) for t in topics for p in self.consumer.partitions_for_topic(t) or ()]
        new = [tp for tp in parts if tp not in self.consumer.assignment()]
        if new:
            self.consumer.assign([*self.consumer.assignment(), *new])
            self.consumer.seek_to_beginning(*new)

    def run(self) -> None:
        next_assign, idle_since = 0.0, time.monotonic()
        while not self.stop.is_set():
            if self.events is None and self.rolled():
                self.events = self.sent()
            if time.monotonic() >= next_assign and self.events is None:  # faust makes its changelogs when it starts
                self.assign_all()
                next_assign = time.monotonic() + 10
            polled = self.consumer.poll(timeout_ms=200)
            if polled:
                idle_since = time.monotonic()
            elif self.events is not None and time.monotonic() - idle_since > 5:
                break  # the old broker is drained (or gone): its records are all counted
            self._count(polled)
        self.consumer.close()

    def _count(self, polled: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in polled.items():
            size = sum(
                len(r.key or b"") + len(r.value or b"") + sum(len(k) + len(v or b"") for k, v in r.headers)
                for r in records
            )
            with self.lock:
                self.bytes[tp.topic] += size
                self.records[tp.topic] += len(records)

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        with self.lock:
            return Counter(self.bytes), Counter(self.records)


class Publisher(threading.Thread):
    """The demo's traffic at ``rate`` events per second, posted to the API's ``/v1/raw/{source}`` (the
    journal: durable across the broker's rollovers) until stopped."""

    def __init__(self, settings: Settings, rate: float, customers: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.api = ApiPublisher(settings, patience_s=600)  # the API is away while the broker rolls over
        self.sim = RetailSimulator(seed=seed, customers=customers, bad_fraction=0.0)
        self.rate = rate
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        chunk = max(1, int(self.rate / 5))
        while not self.stop.is_set():
            for item in self.sim.next_batch(datetime.now(UTC), chunk):
                value = item.payload if isinstance(item.payload, bytes) else orjson.dumps(item.payload)
                self.api.send(item.source, item.key, value)
            self.api.flush()
            self.sent += chunk
            ahead = self.sent / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        self.api.close()


def growth_mb_per_min(samples: list[tuple[float, dict[str, float]]], name: str) -> float | None:
    """The slope (least squares, MB per minute) of a process's RSS over the second half of the run."""
    half = [(t, rss[name]) for t, rss in samples[len(samples) // 2 :] if name in rss]
    if len(half) < 2:
        return None
    ts, ys = [t / 60 for t, _ in half], [y for _, y in half]
    mean_t, mean_y = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mean_t) ** 2 for t in ts)
    return sum((t - mean_t) * (y - mean_y) for t, y in zip(ts, ys, strict=True)) / var if var else None


def redis_families(settings: Settings, sample_every: int = 50) -> list[tuple[str, int, float]]:
    """What Redis holds, by key family (``crmhub:<family>:``): (family, keys, MB estimated from every
    ``sample_every``-th key's MEMORY USAGE), biggest first. Each family is kept for its own window
    (docs/broker-memory.md): this is what the growth of the Redis process is made of."""
    client = redis.Redis.from_url(settings.redis_dsn)
    keys: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for i, key in enumerate(client.scan_iter(count=2000)):
        family = ":".join(key.decode(errors="replace").split(":")[:2])
        keys[family] += 1
        if i % sample_every == 0:
            size[family] += (client.memory_usage(key) or 0) * sample_every
    client.close()
    return [(family, n, size[family] / 1e6) for family, n in keys.most_common()]


def report(samples: list[tuple[float, dict[str, float]]], meter: TopicMeter, sent: int, settings: Settings) -> None:
    names = sorted({name for _, rss in samples for name in rss})
    print(
        "\nRSS per process (MB): first, last, max of the first half, max of the second half, growth over the"
        " second half (MB/min; a rollover restarts the services, so their RSS saws: compare the maxima)"
    )
    halves = (samples[: len(samples) // 2], samples[len(samples) // 2 :])
    for name in names:
        values = [rss[name] for _, rss in samples if name in rss]
        first, second = ([rss[name] for _, rss in part if name in rss] or [0.0] for part in halves)
        slope = growth_mb_per_min(samples, name)
        growth = f"{slope:+.2f}" if slope is not None else "n/a"
        print(f"  {name:<12} {values[0]:8.0f} {values[-1]:8.0f} {max(first):8.0f} {max(second):8.0f}   {growth}")
    size, records = meter.snapshot()
    per = meter.events or sent
    print(f"\nbroker: bytes per input event per topic (its first incarnation: {per:,} events sent)")
    for topic, n in size.most_common():
        print(f"  {topic:<45} {n / max(per, 1):9.0f} B/event  {records[topic] / max(per, 1):6.2f} records/event")
    print(f"  {'total':<45} {sum(size.values()) / max(per, 1):9.0f} B/event")
    print("\nRedis by key family: keys, MB (estimated), bytes per input event")
    for family, n, mb in redis_families(settings):
        print(f"  {family:<30} {n:10,} {mb:8.1f} MB {mb * 1e6 / max(sent, 1):8.1f} B/event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500.0, help="events/s offered")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a new temporary directory")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="crmhub-soak-"))
    settings = Settings(data_dir=data_dir, kafka_port=free_port(), redis_port=free_port(), api_port=free_port())
    print(f"soak: {args.rate:g} events/s for {args.minutes:g} min; embedded stack in {data_dir}", flush=True)
    with running_hub(settings, supervise=True) as hub:
        publisher = Publisher(hub.settings, args.rate, args.customers, args.seed or int(time.time()))
        meter = TopicMeter(hub.settings, lambda: any("rolling over" in n for n in hub.notes), lambda: publisher.sent)
        meter.start()
        publisher.start()
        samples: list[tuple[float, dict[str, float]]] = []
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                if hub.failure:
                    raise SystemExit(hub.failure)
                rss = process_rss(hub, skip=("traffic",))
                samples.append((elapsed, rss))
                line = " ".join(f"{k}={v:.0f}" for k, v in rss.items())
                print(f"[{elapsed:6.0f} s] sent={publisher.sent:,} RSS MB {line} total={sum(rss.values()):.0f}")
                time.sleep(min(args.sample_seconds, max(args.minutes * 60 - elapsed, 0.1)))
        finally:
            publisher.stop.set()
            publisher.join(30)
            samples.append((time.monotonic() - started, process_rss(hub, skip=("traffic",))))
            time.sleep(2)
            meter.stop.set()
            meter.join(30)
            report(samples, meter, publisher.sent, hub.settings)
            print(f"restarts: {hub.notes or 'none'}")


if __name__ == "__main__":
    main()
