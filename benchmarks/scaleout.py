"""Scale-out benchmark: the end-to-end throughput figure (``benchmarks/e2e.py`` phase 1) with 1, 2 and 4
instances of every service (``--scale``), the scaling factor against one instance, and the CPU seconds each
instance (and the broker and Redis) used during the measured phase.

Each run starts a fresh embedded stack with that many instances per service, warms up until every
instance has consumed something (all joined their groups and own partitions), then publishes ``--events``
as fast as possible and times until the profile service has folded the last and the segmenter evaluated
every profile change. On a 2-core machine more processes only share the same two cores: expect contention,
not speed-up (the CPU columns show where the time goes).

    python benchmarks/scaleout.py --events 20000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import redis
from e2e import Throughput, publish, throughput, warm_up  # type: ignore[import-not-found]  # benchmarks/e2e.py
from measure import cpu_s  # benchmarks/measure.py

from crmhub.core.metrics import process_samples
from crmhub.core.net import free_port
from crmhub.core.setting_values import SCALABLE
from crmhub.core.settings import Settings
from crmhub.core.stats import read_counts
from crmhub.demo.traffic import RetailSimulator
from crmhub.hub import Hub, running_hub


def processes(hub: Hub) -> dict[str, int]:
    """Every instance's pid, the embedded broker's and Redis server's, and this one's (the publisher)."""
    pids = {c.name: c.proc.pid for c in hub.children} | {"publisher": os.getpid()}
    for name, server in (("broker", hub.broker), ("redis", hub.redis_server)):
        if server is not None and server.proc is not None:
            pids[name] = server.proc.pid
    return pids


def consumed(hub: Hub, pid: int) -> float:
    return sum(v for _, v in process_samples(hub.metrics_dir, pid, "crmhub_events_consumed_total"))


def settle(hub: Hub, sim: RetailSimulator, data_dir: Path, timeout_s: float = 180.0) -> redis.Redis:
    """Warm up until every instance has consumed something, then until the counters stop moving."""
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    warm_up(hub, sim, r)
    deadline = time.monotonic() + timeout_s
    while idle := [c.name for c in hub.children if not consumed(hub, c.proc.pid)]:
        if time.monotonic() > deadline:
            raise SystemExit(f"instances that never consumed: {', '.join(idle)} (logs in {data_dir / 'logs'})")
        publish(hub, sim, 200, None)
        time.sleep(2)
    before: dict[str, int] | None = None
    while (now := read_counts(r)) != before:
        before = now
        time.sleep(1.5)
    return r


def one_run(instances: int, events: int, customers: int, timeout_s: float) -> tuple[Throughput, dict[str, float]]:
    """A fresh stack with ``instances`` of every service: phase 1's figures and each process's CPU seconds."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"crmhub-scaleout-{instances}-"))
    scale = ",".join(f"{service}={instances}" for service in SCALABLE)
    settings = Settings(
        data_dir=data_dir, kafka_port=free_port(), redis_port=free_port(), api_port=free_port(), scale=scale
    )
    sim = RetailSimulator(seed=int(time.time()), customers=customers, bad_fraction=0.0)
    with running_hub(settings, services=SCALABLE) as hub:
        r = settle(hub, sim, data_dir)
        pids = processes(hub)
        before = {name: cpu_s(pid) for name, pid in pids.items()}
        figures = throughput(hub, sim, r, events, timeout_s)
        cpu = {name: cpu_s(pid) - before[name] for name, pid in pids.items()}
    return figures, cpu


def rate(t: Throughput) -> float:
    """Events/s through every stage (the segmenter's and the notifier's end; an upper bound if one of them
    was not done within the timeout)."""
    return t.rate


def report(instances: int, runs: list[tuple[Throughput, dict[str, float]]], first: tuple[int, float] | None) -> float:
    """Print one scale's medians (``first``: the first scale and its events/s, the factor's base); its events/s."""
    through = statistics.median(rate(t) for t, _ in runs)
    profile = statistics.median(t.sent / t.profile_s for t, _ in runs)
    elapsed = statistics.median(t.seconds for t, _ in runs)
    cpu = {name: statistics.median(c[name] for _, c in runs) for name in runs[0][1]}
    base = first or (instances, through)
    print(
        f"{instances} per service: {through:,.0f} events/s through all stages ({profile:,.0f} ingest -> profile), "
        f"{through / base[1]:.2f}x of {base[0]} per service; {elapsed:.1f} s; runs: "
        + ", ".join(f"{rate(t):,.0f}" for t, _ in runs)
    )
    print(
        f"  CPU seconds in the phase (median): {sum(cpu.values()):.1f} of {2 * elapsed:.1f} on 2 cores; "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(cpu.items())),
        flush=True,
    )
    return through


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--scales", default="1,2,4", help="instances per service of each run, comma separated")
    parser.add_argument("--runs", type=int, default=1, help="runs per scale (medians are printed)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    print(f"{args.events:,} events as fast as possible, {args.runs} run(s) per scale; load {os.getloadavg()[0]:.1f}")
    scales = [int(n) for n in args.scales.split(",")]
    results: dict[int, list[tuple[Throughput, dict[str, float]]]] = {n: [] for n in scales}
    for _ in range(args.runs):  # the scales alternate: a change of the machine's load hits each alike
        for instances in scales:
            figures, cpu = one_run(instances, args.events, args.customers, args.timeout)
            results[instances].append((figures, cpu))
            print(
                f"  {instances} per service: {rate(figures):,.0f} events/s, CPU {sum(cpu.values()):.1f} s", flush=True
            )
    first: tuple[int, float] | None = None
    for instances in scales:
        through = report(instances, results[instances], first)
        first = first or (instances, through)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
