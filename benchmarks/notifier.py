"""The notifier's per-profile work alone, on demo traffic: profile changes/s through the pure work the
agent does on each change (the instant alerts, and what the shipped journeys' profile triggers find:
carts, views, complaints, cases), and, for timer
tables of 10k, 100k and 1M entries, what finding the due ones costs: a scan of the whole table (how the
first version did it, every 0.25 s tick) against the due index (services/notifier/timers.py) on a tick
that finds 1% of the entries due, and the index's rebuild after a recovery.

    python benchmarks/notifier.py --events 30000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fold import demo_events  # type: ignore[import-not-found]  # benchmarks/fold.py, run as a script

from services.notifier.journeys.catalog import load_journeys
from services.notifier.journeys.routing import JourneyIndex
from services.notifier.journeys.triggers import ItemsTrigger, ProfileTrigger, profile_occurrences
from services.notifier.profile_alerts import profile_alerts
from services.notifier.timers import DueIndex
from services.profile.fold import fold_events


def profile_changes(n_events: int) -> list[dict[str, Any]]:
    """Each event folded into its profile, the profile as published after each one (JSON, as the agent gets it)."""
    profiles: dict[str, Any] = {}
    changes = []
    for event in demo_events(n_events):
        pid = event.customer_id or event.anonymous_id or event.email or "?"
        profiles[pid] = fold_events(profiles.get(pid), pid, [event])
        changes.append(orjson.loads(profiles[pid].model_dump_json()))
    return changes


def rules_rate(changes: list[dict[str, Any]]) -> float:
    index = JourneyIndex.of(load_journeys())
    triggers = [j.trigger for j in index.profiled if isinstance(j.trigger, ProfileTrigger | ItemsTrigger)]
    window, now = timedelta(hours=1), datetime.now(UTC)
    started = time.perf_counter()
    for profile in changes:
        profile_alerts(profile, window, now)  # type: ignore[arg-type]  # a published profile: a ProfileDoc
        view = index.read_view(profile)
        for trigger in triggers:
            profile_occurrences(trigger, view, profile, now)
    return len(changes) / (time.perf_counter() - started)


def ms(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def timer_costs(entries: int) -> tuple[float, float, float]:
    """(full scan, index tick finding 1% due, index rebuild) in ms, for a table of ``entries`` waits."""
    now = datetime.now(UTC).timestamp()
    table = {f"cart_abandoned:{i}": {"due": now + (i % 100) - 0.5, "pending": {}} for i in range(entries)}
    scan = ms(
        lambda: [(k, d) for k, d in list(table.items()) if d is not None and d["due"] is not None and d["due"] <= now]
    )
    index = DueIndex()
    rebuild = ms(lambda: index.rebuild(table.items()))
    tick = ms(lambda: index.pop_due(now, table.get))
    return scan, tick, rebuild


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=30_000)
    args = parser.parse_args()
    changes = profile_changes(args.events)
    print(f"rules: {rules_rate(changes):,.0f} profile changes/s ({len(changes):,} changes of demo traffic)")
    for n in (10_000, 100_000, 1_000_000):
        scan, tick, rebuild = timer_costs(n)
        print(
            f"{n:>9,} timers: full scan {scan:7.1f} ms per tick; due index {tick:6.2f} ms per tick "
            f"({n // 100:,} due), rebuild after recovery {rebuild:6.1f} ms"
        )


if __name__ == "__main__":
    main()
