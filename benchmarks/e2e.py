"""End-to-end benchmark on the embedded stack: synthetic retail events through the whole hub.

Phase 1 (throughput): publish N events to the raw topics as fast as kafka-python can, and time from the
first publish until the profile service has folded and committed the last one (and until the segmenter
has evaluated the last profile change).
Phase 2 (latency): publish at a steady rate and measure event -> profile updated latency, as the time
between an event's occurrence and the CreateTime of the profile change it produced on crm.profiles.v1.

    python benchmarks/e2e.py --events 50000 --rate 2000 --latency-seconds 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis
from kafka import KafkaConsumer

from crmhub.core import kafka as kafka_io
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.stats import read_counts
from crmhub.core.topics import PROFILE_CHANGES, raw_topic
from crmhub.demo.traffic import RetailSimulator
from crmhub.hub import Hub, running_hub


def wait_counter(r: redis.Redis, name: str, target: int, timeout_s: float) -> float | None:
    """Monotonic time at which counter ``name`` reached ``target``; None on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if read_counts(r).get(name, 0) >= target:
            return time.monotonic()
        time.sleep(0.02)
    return None


def ingested(counts: dict[str, int]) -> int:
    return sum(v for k, v in counts.items() if k.startswith("ingest.in."))


def wait_folded(r: redis.Redis, base: dict[str, int], sent: int, timeout_s: float) -> float | None:
    """Monotonic time at which ingest had taken the ``sent`` inputs published since the counters were ``base``
    and the profile service had folded every event it forwarded of them (catalogue entries go to the
    catalogue, not to a profile: the simulator's first 60 inputs are); None on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = read_counts(r)
        forwarded = now.get("ingest.out", 0) - base.get("ingest.out", 0)
        folded = now.get("profile.events", 0) - base.get("profile.events", 0)
        if ingested(now) - ingested(base) >= sent and folded >= forwarded:
            return time.monotonic()
        time.sleep(0.02)
    return None


def publish(hub: Hub, sim: RetailSimulator, n: int, rate: float | None) -> tuple[int, float]:
    """Publish n events (paced at ``rate`` per second if given); return (sent, seconds)."""
    producer = kafka_io.producer(hub.settings, linger_ms=20)
    sent, started = 0, time.monotonic()
    chunk = 500 if rate is None else max(1, int(rate / 50))
    while sent < n:
        batch = sim.next_batch(datetime.now(UTC), min(chunk, n - sent))
        for item in batch:
            value = item.payload if isinstance(item.payload, bytes) else orjson.dumps(item.payload)
            producer.send(raw_topic(item.source), key=item.key.encode(), value=value)
        sent += len(batch)
        if rate is not None:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush()
    producer.close()
    return sent, time.monotonic() - started


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class LatencyProbe(threading.Thread):
    """Reads crm.profile-changes.v1 from now on: latency = record CreateTime - profile.updated_at, for each
    profile in the record (crm.profiles.v1 is not published on the embedded broker)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            PROFILE_CHANGES,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=f"bench-{time.time_ns()}",
            auto_offset_reset="latest",
            session_timeout_ms=6000,
        )
        self.samples: list[float] = []
        self.timeline: list[tuple[float, float]] = []
        self.since_ms = 0  # Tansu's "latest" starts early (BROKER.md): ignore records made before this
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            polled = self.consumer.poll(timeout_ms=100)
            if self.consumer.assignment():
                self.ready.set()
            for records in polled.values():
                for record in records:
                    if record.timestamp < self.since_ms:
                        continue
                    for doc in orjson.loads(record.value):
                        updated = datetime.fromisoformat(doc["updated_at"]).timestamp()
                        self.samples.append(record.timestamp / 1000 - updated)
                        self.timeline.append((record.timestamp / 1000, record.timestamp / 1000 - updated))
        self.consumer.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Throughput:
    """Phase 1's figures: ``sent`` events published in ``publish_s``; the profile service had folded the last
    after ``profile_s``, the segmenter evaluated the ``profiles_changed`` changes after ``all_stages_s``
    (None: not within the timeout), all from the first publish."""

    sent: int
    publish_s: float
    profile_s: float
    profiles_changed: int
    all_stages_s: float | None
    base: dict[str, int]  # the counters before phase 1
    started: float  # monotonic time of the first publish


def warm_up(hub: Hub, sim: RetailSimulator, data_dir: Path) -> redis.Redis:
    """Every service joined its group and handled a first batch; a Redis client of the hub."""
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    publish(hub, sim, 200, None)
    if wait_folded(r, {}, 200, 120) is None or wait_counter(r, "segmenter.evaluated", 1, 120) is None:
        raise SystemExit("warm-up did not complete: see the logs in " + str(data_dir / "logs"))
    time.sleep(2)
    return r


def throughput(hub: Hub, r: redis.Redis, sim: RetailSimulator, events: int, timeout_s: float) -> Throughput:
    """Phase 1: ``events`` published as fast as possible, timed until the profile service and the segmenter
    are through them."""
    base = read_counts(r)
    started = time.monotonic()
    sent, publish_s = publish(hub, sim, events, None)
    done = wait_folded(r, base, sent, timeout_s)
    if done is None:
        raise SystemExit(f"profile service did not catch up within {timeout_s:.0f} s: {read_counts(r)}")
    changed = read_counts(r).get("profile.updated", 0) - base.get("profile.updated", 0)
    seg_done = wait_counter(r, "segmenter.evaluated", base.get("segmenter.evaluated", 0) + changed, timeout_s)
    all_stages = None if seg_done is None else seg_done - started
    return Throughput(sent, publish_s, done - started, changed, all_stages, base, started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s of the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="crmhub-bench-"))
    settings = Settings(data_dir=data_dir, kafka_port=free_port(), redis_port=free_port(), api_port=free_port())
    sim = RetailSimulator(seed=int(time.time()), customers=args.customers, bad_fraction=0.0)
    print(f"starting the embedded stack in {data_dir} …", flush=True)
    with running_hub(settings, services=("ingest", "profile", "segmenter", "notifier")) as hub:
        r = warm_up(hub, sim, data_dir)
        print(f"phase 1: {args.events:,} events as fast as possible", flush=True)
        phase1 = throughput(hub, r, sim, args.events, args.timeout)
        sent, base, started, profiles_changed = phase1.sent, phase1.base, phase1.started, phase1.profiles_changed
        rate = sent / phase1.publish_s
        print(f"  published {sent:,} in {phase1.publish_s:.1f} s ({rate:,.0f}/s, kafka-python producer)")
        print(
            f"  ingest -> profile: {sent:,} events folded and committed in {phase1.profile_s:.1f} s "
            f"= {sent / phase1.profile_s:,.0f} events/s sustained end to end"
        )
        if phase1.all_stages_s is not None:
            print(
                f"  ... and segmenter evaluated all {profiles_changed:,} profile changes after "
                f"{phase1.all_stages_s:.1f} s = {sent / phase1.all_stages_s:,.0f} events/s through all stages"
            )

        # let every stage drain phase 1 before measuring latency at a steady rate
        notifier_done = wait_counter(
            r, "notifier.profiles", base.get("notifier.profiles", 0) + profiles_changed, args.timeout
        )
        if notifier_done is not None:
            print(f"  ... and notifier handled all {profiles_changed:,} after {notifier_done - started:.1f} s")
        print(
            f"phase 2: {args.rate:,.0f} events/s for {args.latency_seconds:.0f} s, latency event -> profile", flush=True
        )
        probe = LatencyProbe(hub.settings)
        probe.since_ms = int(time.time() * 1000)
        probe.start()
        probe.ready.wait(30)
        sent, took = publish(hub, sim, int(args.rate * args.latency_seconds), args.rate)
        time.sleep(3)
        probe.stop.set()
        probe.join(10)
        samples = [s * 1000 for s in probe.samples]
        if samples:
            print(
                f"  offered {sent / took:,.0f} events/s; {len(samples):,} profile updates observed; "
                f"latency p50 {statistics.median(samples):.0f} ms, p99 {pct(samples, 0.99):.0f} ms, "
                f"max {max(samples):.0f} ms"
            )
        if os.environ.get("CRMHUB_BENCH_TIMELINE"):
            t0 = probe.since_ms / 1000
            for second in range(int(args.latency_seconds) + 3):
                window = [lat * 1000 for t, lat in probe.timeline if second <= t - t0 < second + 1]
                if window:
                    print(
                        f"    t={second:3d}s n={len(window):5d} p50={statistics.median(window):7.0f} "
                        f"max={max(window):7.0f} ms"
                    )
        rss = {c.name: rss_mb(c.proc.pid) for c in hub.children if c.proc.poll() is None}
        print("  RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()) + f" (total {sum(rss.values()):.0f})")


if __name__ == "__main__":
    main()
