"""An idle hub on the embedded stack: the CPU every process spends with no traffic at all, and how long the
first event after a quiet spell takes to reach its profile.

A small shop's hub is idle most of the day, so what it spends doing nothing is what it costs to keep. The
consumers' fetch wait is the trade (``crmhub.core.kafka.FetchWait``): 20 ms while records come, 200 ms
once none came for 2 s; the first event after a quiet spell pays the longer wait, at most once per hop.

Phase 1: the hub started with every service and the API, left ``--settle`` s to join its groups, then the
CPU time (``measure.cpu_s``) of each process over ``--seconds``, ``--runs`` times: % of one core.
Phase 2: ``--quiet-samples`` times, ``--quiet`` s of nothing, then one event of the demo's mix published to
its raw topic, and the time until the profile service counted a profile updated (an event that updates no
profile is not timed, and another is sent).

    python benchmarks/idle.py                       # 3 runs of 30 s, 5 quiet-spell events
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
from measure import cpu_since, cpu_snapshot, hub_pids, wait_counter

from crmhub.core import kafka as kafka_io
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.stats import read_counts
from crmhub.core.topics import raw_topic
from crmhub.demo.traffic import RetailSimulator
from crmhub.hub import Hub, running_hub


def idle_cpu(hub: Hub, seconds: float) -> dict[str, float]:
    """% of one core each process of the hub spent over ``seconds`` of no traffic."""
    pids = hub_pids(hub)
    before, started = cpu_snapshot(pids), time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - started
    return {name: 100 * used / took for name, used in cpu_since(pids, before).items()}


def quiet_spell_latency(hub: Hub, quiet_s: float, samples: int) -> list[float]:
    """Seconds from publishing one event after ``quiet_s`` of nothing until a profile was updated."""
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    producer = kafka_io.producer(hub.settings, linger_ms=0)
    sim, found = RetailSimulator(seed=5, customers=1000), list[float]()
    events = [item for item in sim.next_batch(datetime.now(UTC), 200 + 4 * samples) if item.source != "catalog"]
    for item in events[: 4 * samples]:  # the simulator's catalogue first: products, no profile
        if len(found) == samples:
            break
        time.sleep(quiet_s)
        value = item.payload if isinstance(item.payload, bytes) else orjson.dumps(item.payload)
        updated = read_counts(r).get("profile.updated", 0)
        sent = time.monotonic()
        producer.send(raw_topic(item.source), key=item.key.encode(), value=value).get(timeout=10)
        reached = wait_counter(r, "profile.updated", updated + 1, timeout_s=5.0)
        if reached is not None:
            found.append(reached - sent)
    producer.close()
    return found


def run(args: argparse.Namespace) -> None:
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="crmhub-idle-")),
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
    )
    print(f"idle: starting the embedded stack in {settings.data_dir} …", flush=True)
    with running_hub(settings) as hub:
        time.sleep(args.settle)
        runs = []
        for n in range(1, args.runs + 1):
            shares = idle_cpu(hub, args.seconds)
            runs.append(shares)
            each = ", ".join(f"{name} {share:.1f}%" for name, share in sorted(shares.items(), key=lambda x: -x[1]))
            print(f"run {n}: {sum(shares.values()):.1f}% of a core over {args.seconds:g} s idle ({each})", flush=True)
        median = statistics.median(sum(shares.values()) for shares in runs)
        print(f"idle hub: median {median:.1f}% of one core, all processes together ({args.runs} runs)")
        if args.quiet_samples:
            took = quiet_spell_latency(hub, args.quiet, args.quiet_samples)
            ms = ", ".join(f"{1000 * t:.0f}" for t in took)
            print(f"first event after {args.quiet:g} s of nothing -> profile updated: {ms} ms", end="")
            print(f" (median {1000 * statistics.median(took):.0f} ms)" if took else " (none timed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after the start, before measuring")
    parser.add_argument("--seconds", type=float, default=30.0, help="of each idle measurement")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quiet", type=float, default=5.0, help="seconds of nothing before each timed event")
    parser.add_argument("--quiet-samples", type=int, default=5)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
