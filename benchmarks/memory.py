"""Memory with profiles (issue 20: all services together ≤ 1.5 GB RSS with 1,000,000 profiles and 50
segments): how each process of the embedded stack grows as profiles are added, and the time to load them.

Profiles are loaded through every stage (an ``identify`` each, published to the raw topic: ingest resolves
the customer, the profile stage folds and stores the profile, the segmenter evaluates the segments, the
notifier its journeys and alerts), in ``--steps`` equal steps. After each step, once every stage has
handled it, it prints the load rate, every process's RSS (the services, the API, the broker, Redis) and
what Redis holds by key family (estimated from a sample of each family's keys), then
each process's growth per 100,000 profiles over the run. ``--segments`` sets how many of the benchmark's
50 segments are defined (0 shows what the segments themselves cost).

The broker runs without its memory budget here: the profiles are published straight to a raw topic, which
a rollover does not carry over (docs/broker-memory.md); under ``crmhub up`` the budget (1 GB) bounds it by
rolling over, so its figure here is what the records of the load take, not what a hub would hold.

    python benchmarks/memory.py                          # 1,000,000 profiles in 4 steps (~15 min)
    python benchmarks/memory.py --quick                  # 20,000 profiles in 2 steps (about a minute)
    python benchmarks/memory.py --profiles 200000 --segments 0
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import redis
import yaml
from e2e import bench_settings, drain  # type: ignore[import-not-found]  # run as a script
from journeys import load_profiles  # type: ignore[import-not-found]
from measure import process_rss  # type: ignore[import-not-found]
from segmenter import fifty_segments  # type: ignore[import-not-found]

from crmhub.core.stats import read_counts
from crmhub.hub import Hub, running_hub

SAMPLE = 500  # keys of a family whose memory is read after each step
_WORD = re.compile(r"[a-z][a-z_.-]*")


@dataclass
class Step:
    profiles: int
    added: int  # by this step
    seconds: float  # to load them, until the last stage had them
    rss: dict[str, float]  # MB per process
    redis_mb: float  # Redis's used_memory
    families: dict[str, tuple[int, float]]  # key family: (keys, MB), estimated


def family(key: bytes) -> str:
    """A key's family: its leading word components, up to three (``crmhub:id:email``, ``crmhub:profile``)."""
    words = []
    for part in key.decode(errors="replace").split(":")[:3]:
        if not _WORD.fullmatch(part):
            break
        words.append(part)
    return ":".join(words) or "(other)"


def redis_families(r: redis.Redis) -> dict[str, tuple[int, float]]:
    """Keys and MB per family, largest first: every key's name read (SCAN), the memory (MEMORY USAGE) of up
    to :data:`SAMPLE` keys of each family (SCAN's order is the hash table's: no pattern in the ids), and the
    family's MB its mean times its keys: exact for families of few keys, which may be large (a hash per
    partition, a set per segment)."""
    count, sampled = Counter[str](), dict[str, list[bytes]]()
    for key in r.scan_iter(count=10_000):
        name = family(key)
        count[name] += 1
        if len(held := sampled.setdefault(name, [])) < SAMPLE:
            held.append(key)
    pipe = r.pipeline(transaction=False)
    found = {}
    for name, keys in sampled.items():
        for key in keys:
            pipe.memory_usage(key)
        used = [u or 0 for u in pipe.execute()]
        found[name] = (count[name], sum(used) / len(used) * count[name] / 1e6)
    return dict(sorted(found.items(), key=lambda kv: -kv[1][1]))


def write_segments(path: Path, count: int) -> Path:
    path.write_text(yaml.safe_dump({"segments": fifty_segments()[:count]}))
    return path


def run(args: argparse.Namespace) -> list[Step]:
    steps: list[Step] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp), 5.0)
        settings = settings.model_copy(update={"segments_file": write_segments(Path(tmp) / "s.yaml", args.segments)})
        with running_hub(settings) as hub:
            r = redis.Redis.from_url(hub.settings.redis_dsn)
            step = args.profiles // args.steps
            steps.append(measure(hub, r, 0, 0, 0.0))
            print_step(steps[-1])
            for i in range(args.steps):
                base, started = read_counts(r), time.monotonic()
                load_profiles(hub, step, prefix=f"mem{i}")
                done, _ = drain(r, base, step, max(600.0, step / 100))
                if None in done.values():
                    raise SystemExit(f"not every stage had the profiles in time: {done}")
                took = max(v or 0.0 for v in done.values()) - started
                steps.append(measure(hub, r, steps[-1].profiles + step, step, took))
                print_step(steps[-1])
    return steps


def measure(hub: Hub, r: redis.Redis, profiles: int, added: int, seconds: float) -> Step:
    used = r.info("memory")["used_memory"] / 1e6
    return Step(profiles, added, seconds, process_rss(hub), used, redis_families(r))


def print_step(s: Step) -> None:
    rate = f", {s.added:,} loaded in {s.seconds:.0f} s ({s.added / s.seconds:,.0f}/s)" if s.added else ""
    services = sum(mb for name, mb in s.rss.items() if name not in ("broker", "redis"))
    print(f"{s.profiles:,} profiles{rate}", flush=True)
    print("  RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in s.rss.items()) + f"; services + API {services:.0f}")
    print(
        f"  Redis used_memory {s.redis_mb:.0f} MB: "
        + ", ".join(f"{f} {n:,} keys {mb:.0f} MB" for f, (n, mb) in list(s.families.items())[:8]),
        flush=True,
    )


def print_growth(steps: list[Step]) -> None:
    first, last = steps[1] if len(steps) > 2 else steps[0], steps[-1]
    added = last.profiles - first.profiles
    if added <= 0:
        return
    print(f"growth per 100,000 profiles (from {first.profiles:,} to {last.profiles:,}), MB:")
    print("  " + ", ".join(f"{k} {(last.rss[k] - first.rss.get(k, 0)) * 1e5 / added:+.0f}" for k in last.rss))
    print(f"  Redis used_memory {(last.redis_mb - first.redis_mb) * 1e5 / added:+.0f}")
    for f, (n, mb) in list(last.families.items())[:8]:
        grew = (mb - first.families.get(f, (0, 0.0))[1]) * 1e5 / added
        print(f"    {f}: {grew:+.1f} MB, {n / last.profiles:.2f} keys/profile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--segments", type=int, default=50, choices=range(51), metavar="0..50")
    parser.add_argument("--quick", action="store_true", help="20,000 profiles in 2 steps")
    args = parser.parse_args()
    if args.quick:
        args.profiles, args.steps = min(args.profiles, 20_000), 2
    print_growth(run(args))


if __name__ == "__main__":
    main()
