"""The profile fold alone, on demo traffic: events/s through ``fold_events`` in batches grouped per
profile like the service, and "service-like" with each profile loaded from and dumped to JSON per batch
(as the cache and SQL hold it). Each mode runs with Python's default garbage collector settings and
with the services' tuning (crmhub.core.runtime.tune_gc) in fresh processes, so the two compare in one run.

    python benchmarks/fold.py --events 60000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import orjson

from crmhub.core.runtime import tune_gc
from crmhub.demo.traffic import RetailSimulator
from schemas.events import Event
from schemas.profile import Profile
from services.ingest.decode import RawInput, decode_raw
from services.profile.fold import fold_events

BATCH = 2000


def demo_events(n: int) -> list[Event]:
    sim, now, events = RetailSimulator(seed=7, customers=2000), datetime(2025, 3, 1, tzinfo=UTC), []
    while len(events) < n:
        now += timedelta(seconds=1)
        for g in sim.next_batch(now, 1000):
            event = decode_raw(
                RawInput(g.source, g.payload if isinstance(g.payload, bytes) else orjson.dumps(g.payload), now)
            )
            if not hasattr(event, "reason"):
                events.append(event)
    return events[:n]


def key(e: Event) -> str:  # a stand-in for identity resolution
    return e.customer_id or e.email or e.loyalty_id or e.phone or e.anonymous_id or ""


def batches(events: list[Event]) -> list[dict[str, list[Event]]]:
    out = []
    for start in range(0, len(events), BATCH):
        groups: dict[str, list[Event]] = defaultdict(list)
        for e in events[start : start + BATCH]:
            groups[key(e)].append(e)
        out.append(groups)
    return out


def measure(n: int, tuned: bool) -> None:
    grouped = batches(demo_events(n))
    if tuned:
        tune_gc()
    profiles: dict[str, Profile] = {}
    started = time.process_time()
    for groups in grouped:
        for pid, evs in groups.items():
            profiles[pid] = fold_events(profiles.get(pid), pid, evs)
    fold_s = time.process_time() - started
    docs: dict[str, str] = {}
    started = time.process_time()
    for groups in grouped:
        for pid, evs in groups.items():
            doc = docs.get(pid)
            docs[pid] = fold_events(Profile.model_validate_json(doc) if doc else None, pid, evs).model_dump_json()
    service_s = time.process_time() - started
    size = sum(len(d) for d in docs.values()) / len(docs)
    gc_mode = "tuned gc  " if tuned else "default gc"
    print(f"{gc_mode}: fold {n / fold_s:,.0f} events/s · service-like {n / service_s:,.0f} events/s "
          f"({len(docs):,} profiles, mean document {size:,.0f} bytes)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--mode", choices=["default", "tuned"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        measure(args.events, args.mode == "tuned")
        return
    for mode in ("default", "tuned"):
        subprocess.run([sys.executable, __file__, "--events", str(args.events), "--mode", mode], check=True)


if __name__ == "__main__":
    main()
