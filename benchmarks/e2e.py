"""End-to-end benchmark on the embedded stack: synthetic retail events through the whole hub, with the 50
segments of benchmarks/segmenter.py defined (DESIGN §9's targets are "with 50 segments").

Phase 1 (throughput): publish N events of the demo's mix to the raw topics as fast as kafka-python can,
and time from the first publish until the profile service has folded and committed the last one, and until
the segmenter and the notifier have both handled the last profile change (end to end). Over that window,
the CPU time (``measure.cpu_s``: with the children each waited for) of every process — each service, the
broker (Tansu), Redis, and this benchmark's publisher — divided by N: µs of CPU per event per stage.
Then, in the same run, one process copies the same raw records with kafka-python (consume + produce, no
decoding: benchmarks/ingest.py), and the end-to-end rate is given as a ratio to that copy (issue 20: goal ≥ 0.5).
Phase 2 (latency): events at a steady rate (default 2,000/s) and, among them, probe social complaints and
probe carts (benchmarks/alert_latency.py): event -> profile updated latency (the CreateTime of each
profile change on crm.profile-changes.v1 minus the profile's updated_at), complaint -> alert, and how
late each probe cart's abandonment alert is after its delay ends (the delay is ``--cart-delay``, short so
that it ends within the run; with the demo's carts abandoned after seconds instead of an hour the notifier
fires in the run what it would fire an hour later in a steady state).
Phase 3 (memory): optionally ``--profiles N`` more customers (an ``identify`` each, through every stage),
then the RSS of every process.

    python benchmarks/e2e.py --events 50000 --rate 2000 --latency-seconds 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis
from alert_latency import collect, probe_delays, probes  # benchmarks/*.py: run as scripts
from ingest import raw_inputs_copy_rate
from journeys import load_profiles
from kafka import KafkaConsumer
from measure import SERVICE_NAMES, cpu_since, cpu_snapshot, hub_pids, ingested, process_rss, wait_for
from report import cpu_table, pct, pct_of_expected
from segmenter import write_segments_file
from sqlalchemy import func, select

from crmhub.core import kafka as kafka_io
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from crmhub.core.stats import read_counts
from crmhub.core.topics import PROFILE_CHANGES, raw_topic
from crmhub.demo.traffic import RetailSimulator
from crmhub.hub import Hub, running_hub
from schemas.tables import profiles

PUBLISHER = "publisher (bench)"  # this process's CPU in the table: the load generator, not a stage


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


@dataclass
class Throughput:
    """Phase 1: seconds from the first publish to each stage's last event or change."""

    sent: int
    publish_s: float
    profile_s: float
    changes: int  # profile changes the segmenter and the notifier had to handle
    segmenter_s: float | None
    notifier_s: float | None
    cpu: dict[str, float]  # CPU seconds per process over the phase
    timeout_s: float
    raw_rate: float = 0.0  # the raw kafka-python copy of the same records, messages/s

    @property
    def finished(self) -> bool:
        return self.segmenter_s is not None and self.notifier_s is not None

    @property
    def seconds(self) -> float:
        """First publish to the last stage done; if a stage did not finish, the timeout (at least that)."""
        if self.segmenter_s is None or self.notifier_s is None:
            return self.timeout_s
        return max(self.profile_s, self.segmenter_s, self.notifier_s)

    @property
    def rate(self) -> float:
        """End-to-end events/s; if a stage did not finish in time, an upper bound."""
        return self.sent / self.seconds


@dataclass
class Latency:
    """Phase 2: latencies in seconds; probes = complaints sent = carts sent."""

    offered: float
    profile: list[float] = field(default_factory=list)
    complaint: list[float] = field(default_factory=list)
    cart: list[float] = field(default_factory=list)
    probes: int = 0
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (s since the start, event -> profile)


@dataclass
class Result:
    throughput: Throughput
    latency: Latency
    rss: dict[str, float]  # MB per process at the end
    profiles: int  # profiles in the store when the RSS was read


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=50_000, help="events of the throughput phase")
    parser.add_argument("--customers", type=int, default=20_000, help="customers of the demo traffic")
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s of the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--probes-per-s", type=float, default=10.0, help="probe complaints (and carts) a second")
    parser.add_argument("--cart-delay", type=float, default=5.0, help="cart abandonment delay, seconds")
    parser.add_argument("--alert-wait", type=float, default=60.0, help="most seconds to wait for the probes' alerts")
    parser.add_argument("--profiles", type=int, default=0, help="customers loaded before the RSS is read")
    parser.add_argument("--timeout", type=float, default=600.0)


def bench_settings(data_dir: Path, cart_delay_s: float) -> Settings:
    return Settings(
        data_dir=data_dir,
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        segments_file=write_segments_file(data_dir / "segments.yaml"),
        abandonment_delay_s=cart_delay_s,
    )


def drain(r: redis.Redis, base: dict[str, int], sent: int, timeout_s: float) -> tuple[dict[str, float | None], int]:
    """Wait until ingest has handled ``sent`` more inputs (counted from ``base``), the profile stage has
    folded every event ingest forwarded (catalogue updates go to the catalogue, not to the profiles), and
    the segmenter and the notifier have handled every profile change it made: the monotonic time each
    stage got there (None: not within ``timeout_s``), and how many profile changes that was. The notifier
    counts what it handled once a second, so its time is up to a second late."""
    deadline = time.monotonic() + timeout_s

    def grew(counts: dict[str, int], *names: str) -> int:
        return sum(counts.get(n, 0) - base.get(n, 0) for n in names)

    done = wait_for(r, {"ingest": lambda c: ingested(c) - ingested(base) >= sent}, timeout_s)
    forwarded = grew(read_counts(r), "ingest.out", "ingest.merges")  # merge events are folded too
    done |= wait_for(r, {"profile": lambda c: grew(c, "profile.events") >= forwarded}, deadline - time.monotonic())
    changes = grew(read_counts(r), "profile.updated")
    handled = {
        "segmenter": lambda c: grew(c, "segmenter.evaluated") >= changes,
        "notifier": lambda c: grew(c, "notifier.profiles") >= changes,
    }
    return done | wait_for(r, handled, deadline - time.monotonic()), changes


def throughput(hub: Hub, sim: RetailSimulator, r: redis.Redis, n: int, timeout_s: float) -> Throughput:
    pids = {**hub_pids(hub), PUBLISHER: os.getpid()}
    base, cpu_before = read_counts(r), cpu_snapshot(pids)
    started = time.monotonic()
    sent, publish_s = publish(hub, sim, n, None)
    done, changes = drain(r, base, sent, timeout_s)
    cpu = cpu_since(pids, cpu_before)
    took = {name: None if at is None else at - started for name, at in done.items()}
    folded = took["profile"]
    if folded is None:
        raise SystemExit(f"the profile service did not catch up within {timeout_s:.0f} s: {read_counts(r)}")
    return Throughput(sent, publish_s, folded, changes, took["segmenter"], took["notifier"], cpu, timeout_s)


def latency(hub: Hub, sim: RetailSimulator, args: argparse.Namespace) -> Latency:
    """Demo events at ``args.rate`` for ``args.latency_seconds`` with probe complaints and carts among them."""
    probe = LatencyProbe(hub.settings)
    probe.since_ms = int(time.time() * 1000)
    probe.start()
    probe.ready.wait(30)
    offered: list[float] = []
    n = int(args.rate * args.latency_seconds)
    traffic = threading.Thread(target=lambda: offered.append(ratio(*publish(hub, sim, n, args.rate))), daemon=True)
    traffic.start()
    sent = probes(hub, int(args.latency_seconds * args.probes_per_s), args.probes_per_s)
    traffic.join()
    count = len(sent) // 2

    def all_in(found: list[tuple[dict[str, object], float]]) -> bool:
        return sum(map(len, probe_delays(found, sent, args.cart_delay))) >= 2 * count

    alerts = collect(hub, 10**9, timeout_s=args.cart_delay + args.alert_wait, enough=all_in)
    probe.stop.set()
    probe.join(10)
    complaint, cart = probe_delays(alerts, sent, args.cart_delay)
    timeline = [(t - probe.since_ms / 1000, lat) for t, lat in probe.timeline]
    return Latency(offered[0] if offered else float("nan"), probe.samples, complaint, cart, count, timeline)


def ratio(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("nan")


def stored_profiles(settings: Settings) -> int:
    engine = make_engine(settings.sql_url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(profiles)).scalar_one()
    engine.dispose()
    return int(n)


def warm_up(hub: Hub, sim: RetailSimulator, r: redis.Redis) -> None:
    """Every service joined its group and handled a first batch."""
    base = read_counts(r)
    sent, _ = publish(hub, sim, 200, None)
    done, _ = drain(r, base, sent, 120)
    if None in done.values():
        raise SystemExit(f"warm-up did not complete ({done}): see the logs in {hub.log_dir}")
    time.sleep(2)


def run(args: argparse.Namespace) -> Result:
    """The three phases on one embedded stack, printing as they go."""
    data_dir = Path(tempfile.mkdtemp(prefix="crmhub-bench-"))
    sim = RetailSimulator(seed=int(time.time()), customers=args.customers, bad_fraction=0.0)
    print(f"e2e: starting the embedded stack in {data_dir} (50 segments) …", flush=True)
    with running_hub(bench_settings(data_dir, args.cart_delay), services=SERVICE_NAMES) as hub:
        r = redis.Redis.from_url(hub.settings.redis_dsn)
        warm_up(hub, sim, r)
        print(f"phase 1: {args.events:,} events as fast as possible", flush=True)
        phase1 = throughput(hub, sim, r, args.events, args.timeout)
        phase1.raw_rate = raw_inputs_copy_rate(hub, phase1.sent, run=0)
        print_throughput(phase1)
        print(f"phase 2: {args.rate:,.0f} events/s for {args.latency_seconds:.0f} s with probes", flush=True)
        phase2 = latency(hub, sim, args)
        print_latency(phase2)
        if args.profiles:
            load(hub, r, args.profiles, args.timeout)
        rss = process_rss(hub)
        stored = stored_profiles(hub.settings)
        print(f"  RSS MB ({stored:,} profiles stored): " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))
    return Result(phase1, phase2, rss, stored)


def load(hub: Hub, r: redis.Redis, n: int, timeout_s: float) -> None:
    """n more customers (an identify each) through every stage, before the memory is read."""
    print(f"phase 3: loading {n:,} profiles through every stage …", flush=True)
    base, started = read_counts(r), time.monotonic()
    load_profiles(hub, n, prefix="mem")
    done, _ = drain(r, base, n, max(timeout_s, n / 100))
    if None in done.values():
        print(f"  NOT every stage had them within the timeout: {read_counts(r)}")
    else:
        print(f"  every stage had them after {max(v or 0 for v in done.values()) - started:.0f} s", flush=True)


def print_throughput(t: Throughput) -> None:
    print(f"  published {t.sent:,} in {t.publish_s:.1f} s ({t.sent / t.publish_s:,.0f}/s, kafka-python producer)")
    print(f"  ingest -> profile: folded and committed after {t.profile_s:.1f} s = {t.sent / t.profile_s:,.0f} events/s")
    for name, took in (("segmenter", t.segmenter_s), ("notifier", t.notifier_s)):
        where = f"after {took:.1f} s" if took is not None else "NOT within the timeout"
        print(f"  {name} handled all {t.changes:,} profile changes {where}")
    bound = "" if t.finished else f"at most (a stage had not finished after {t.timeout_s:.0f} s) "
    print(
        f"  end to end: {bound}{t.rate:,.0f} events/s; raw kafka-python copy of the same records "
        f"{t.raw_rate:,.0f}/s: ratio {t.rate / t.raw_rate:.2f} (goal ≥ 0.5)"
    )
    print(f"  CPU per event over the {t.seconds:.1f} s of the phase:")
    print("    " + cpu_table(t.cpu, t.sent, t.seconds).replace("\n", "\n    "))


def print_latency(lat: Latency) -> None:
    ms = [s * 1000 for s in lat.profile]
    if ms:
        print(
            f"  offered {lat.offered:,.0f} events/s; event -> profile: {len(ms):,} updates, p50 "
            f"{statistics.median(ms):,.0f} ms, p99 {pct(ms, 0.99):,.0f} ms, max {max(ms):,.0f} ms"
        )
    if os.environ.get("CRMHUB_BENCH_TIMELINE"):  # event -> profile, second by second
        for second in range(int(max((t for t, _ in lat.timeline), default=0)) + 1):
            window = [v * 1000 for t, v in lat.timeline if second <= t < second + 1]
            if window:
                p50, most = statistics.median(window), max(window)
                print(f"    t={second:3d}s n={len(window):5d} p50={p50:7.0f} max={most:7.0f} ms")
    for name, values in (("complaint -> alert", lat.complaint), ("cart alert after its delay", lat.cart)):
        print(
            f"  {name}: {len(values)} of {lat.probes} probes, p50 {pct_of_expected(values, lat.probes, 0.5):.3f} s, "
            f"p99 {pct_of_expected(values, lat.probes, 0.99):.3f} s (missing ones count as later than any)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
