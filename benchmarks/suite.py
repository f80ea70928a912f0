"""The benchmark set (issue 20): every figure of DESIGN §9 in one run, each beside its target.

It runs, one after the other on their own embedded stacks (each script also runs on its own):

1. benchmarks/e2e.py — the whole hub with 50 segments: end-to-end events/s and its ratio to a raw
   kafka-python copy of the same records, CPU per event per process, latency at 2,000 events/s offered
   (event -> profile, social complaint -> alert, cart alert after its delay) and every process's RSS
   (after ``--profiles N`` more customers, in the full mode);
2. benchmarks/ingest.py — ingest alone against the raw copy of its inputs in the same run;
3. benchmarks/segmenter.py — the segmenter alone with 50 segments: new profiles and changes of known ones;

then prints one summary table (figure, value, target, met or missed) and the CPU table.

    python benchmarks/suite.py --quick                 # small sizes: under 3 minutes on 2 cores
    python benchmarks/suite.py                         # the full sizes (about 15 minutes)
    python benchmarks/suite.py --profiles 1000000      # the memory target's million profiles (hours)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import e2e  # benchmarks/*.py: run as scripts
import ingest
import redis
import segmenter
from measure import SERVICE_NAMES
from report import Figure, cpu_table, pct, pct_of_expected, summary

from crmhub.hub import running_hub

MILLION = 1_000_000
# the sizes of each mode (options of e2e.py, and of ingest.py and segmenter.py prefixed with their name)
SIZES = {
    "full": dict(timeout=600.0, events=50_000, latency_seconds=20.0, alert_wait=60.0, profiles=100_000,
                 ingest_events=50_000, ingest_warmup=10_000, ingest_runs=3, segmenter_profiles=20_000,
                 segmenter_runs=3),
    "quick": dict(timeout=90.0, events=10_000, latency_seconds=10.0, alert_wait=25.0, profiles=0,
                  ingest_events=15_000, ingest_warmup=3_000, ingest_runs=1, segmenter_profiles=3_000,
                  segmenter_runs=1),
}  # fmt: skip


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: every figure in under 3 minutes")
    e2e.add_arguments(parser)
    for name in ("ingest-events", "ingest-warmup", "ingest-runs", "segmenter-profiles", "segmenter-runs"):
        parser.add_argument(f"--{name}", type=int)
    parser.set_defaults(**dict.fromkeys(SIZES["full"]))  # a size not given comes from the mode's sizes
    args = parser.parse_args()
    for name, value in SIZES["quick" if args.quick else "full"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def segmenter_rates(profiles: int, runs: int, timeout_s: float) -> tuple[float, float]:
    """Medians over the runs: (new profiles, changes of known profiles) per second, 50 segments."""
    with tempfile.TemporaryDirectory(prefix="crmhub-bench-seg-") as tmp:
        settings = segmenter.segmenter_settings(Path(tmp), segmenter.write_segments_file(Path(tmp) / "segments.yaml"))
        with running_hub(settings, services=("segmenter",)) as hub:
            r = redis.Redis.from_url(hub.settings.redis_dsn)
            new, changes = segmenter.service_rates(hub.settings, r, random.Random(6), profiles, runs, timeout_s)
    return statistics.median(new), statistics.median(changes)


def figures(hub: e2e.Result, ingest_rates: ingest.Rates, seg: tuple[float, float], rate: float) -> list[Figure]:
    t, lat = hub.throughput, hub.latency
    services = sum(mb for name, mb in hub.rss.items() if name in SERVICE_NAMES)
    at = f"at {hub.profiles:,} profiles"
    return [
        Figure("end to end, events/s (all stages, 50 segments)", t.rate, at_least=10_000,
               note=f"{t.sent:,} events" if t.finished else f"at most: a stage not done after {t.seconds:.0f} s"),
        Figure("end to end / raw kafka-python copy of the same records", t.rate / t.raw_rate, at_least=0.5,
               note=f"raw copy {t.raw_rate:,.0f} msg/s"),
        Figure("ingest alone / raw copy (median of per-run ratios)", 100 * ingest_rates.ratio(), "%", at_least=60,
               note=f"ingest {statistics.median(ingest_rates.ingest):,.0f}/s"),
        Figure("segmenter, new profiles/s (50 segments)", seg[0], at_least=10_000),
        Figure("segmenter, changes of known profiles/s (50 segments)", seg[1], at_least=10_000),
        Figure(f"event -> profile p99 at {rate:,.0f} events/s offered", 1000 * pct(lat.profile, 0.99), " ms",
               at_most=250, note=f"offered {lat.offered:,.0f}/s achieved; p50 {1000 * pct(lat.profile, 0.5):,.0f} ms"),
        Figure("social complaint -> alert p99", pct_of_expected(lat.complaint, lat.probes, 0.99), " s", at_most=1,
               note=f"{len(lat.complaint)} of {lat.probes} probes alerted"),
        Figure("cart alert after its delay ended, p99", pct_of_expected(lat.cart, lat.probes, 0.99), " s", at_most=2,
               note=f"{len(lat.cart)} of {lat.probes} probes alerted"),
        Figure("RSS of the four services together", services, " MB", at_most=1536, judged=hub.profiles >= MILLION,
               note=at + ("" if hub.profiles >= MILLION else "; the target is at 1M: --profiles 1000000")),
        *(Figure(f"  RSS {name}", mb, " MB", note=at) for name, mb in sorted(hub.rss.items())),
    ]  # fmt: skip


def main() -> None:
    args = parse()
    load = [os.getloadavg()[0]]  # the machine is shared: how busy it was says how far the figures carry
    laps = [time.monotonic()]
    hub = e2e.run(args)
    laps.append(time.monotonic())
    print(f"ingest alone: {args.ingest_events:,} events, {args.ingest_runs} run(s)", flush=True)
    rates = ingest.measure(args.ingest_events, args.ingest_warmup, args.ingest_runs, "inputs", args.timeout)
    laps.append(time.monotonic())
    print(f"segmenter alone: {args.segmenter_profiles:,} profiles, {args.segmenter_runs} run(s)", flush=True)
    seg = segmenter_rates(args.segmenter_profiles, args.segmenter_runs, args.timeout)
    laps.append(time.monotonic())
    took = ", ".join(
        f"{name} {b - a:.0f} s" for name, a, b in zip(("e2e", "ingest", "segmenter"), laps, laps[1:], strict=False)
    )
    load.append(os.getloadavg()[0])
    mode = "quick" if args.quick else "full"
    print(f"\nsummary ({mode} mode, {laps[-1] - laps[0]:.0f} s: {took}; load average {load[0]:.1f} -> {load[1]:.1f}):")
    print(summary(figures(hub, rates, seg, args.rate)))
    t = hub.throughput
    print(f"\nCPU per event per process over the throughput phase ({t.sent:,} events, {t.seconds:.1f} s):")
    print(cpu_table(t.cpu, t.sent, t.seconds))


if __name__ == "__main__":
    main()
