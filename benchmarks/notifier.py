"""The notifier's per-profile work alone, on demo traffic: profile changes/s through the pure work the
agent does on each change (the instant alerts, and what the shipped journeys' profile triggers find:
carts, views, complaints, cases); the journey runner's CPU per event with the shipped journeys and the 20
of ``benchmarks/journeys.py`` (the events and the profile changes they make, handled as the agent hands
them over, with tables, customer reads and outputs in memory: the routing and the engine, not faust,
Redis or the broker); and, for timer
tables of 10k, 100k and 1M entries, what finding the due ones costs: a scan of the whole table (how the
first version did it, every 0.25 s tick) against the due index (services/notifier/timers.py) on a tick
that finds 1% of the entries due, and the index's rebuild after a recovery.

    python benchmarks/notifier.py --events 30000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fold import demo_events  # type: ignore[import-not-found]  # benchmarks/fold.py, run as a script

from crmhub.core.topics import EVENTS, PROFILE_CHANGES
from services.notifier.customers import Fresh
from services.notifier.journeys.catalog import load_journeys, parse_journey
from services.notifier.journeys.outputs import Held
from services.notifier.journeys.routing import JourneyIndex
from services.notifier.journeys.runner import CUSTOMERS, ENROLLMENTS, Input, JourneyRunner
from services.notifier.journeys.triggers import ItemsTrigger, ProfileTrigger, profile_occurrences
from services.notifier.profile_alerts import profile_alerts
from services.notifier.timers import DueIndex
from services.profile.fold import fold_events


def event_changes(n_events: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each event (as on crm.events.v1) with its profile as published after it."""
    profiles: dict[str, Any] = {}
    found = []
    for event in demo_events(n_events):
        pid = event.customer_id or event.anonymous_id or event.email or "?"
        profiles[pid] = fold_events(profiles.get(pid), pid, [event])
        doc = orjson.loads(event.model_copy(update={"profile_id": pid}).model_dump_json())
        found.append((doc, orjson.loads(profiles[pid].model_dump_json())))
    return found


class NoOutputs:
    async def carry_out(self, held: Held) -> None:
        return None


def runner_cost(pairs: list[tuple[dict[str, Any], dict[str, Any]]], batch: int = 20) -> float:
    """µs of CPU per event through :meth:`JourneyRunner.handle`: records of ``batch`` events, each followed by
    the record of the profile changes they made (the customers read are the latest changes)."""
    from journeys import journeys as bench_journeys  # type: ignore[import-not-found]  # benchmarks/journeys.py

    journeys = [*load_journeys(), *(parse_journey(doc) for doc in bench_journeys())]
    latest: dict[str, dict[str, Any]] = {}
    clock = [datetime.fromisoformat(pairs[0][0]["occurred_at"])]

    async def read_fresh(pids: Any) -> dict[str, Fresh]:
        return {pid: Fresh(latest.get(pid)) for pid in pids}

    async def send_due(partition: int, value: bytes) -> None:
        return None

    tables: dict[str, Any] = {ENROLLMENTS: {}, CUSTOMERS: {}}
    runner = JourneyRunner(journeys, tables, read_fresh, NoOutputs(), send_due, lambda: clock[0])

    async def run() -> float:
        started = time.process_time()
        for i in range(0, len(pairs), batch):
            chunk = pairs[i : i + batch]
            clock[0] = datetime.fromisoformat(chunk[-1][0]["occurred_at"])
            latest.update((change["profile_id"], change) for _, change in chunk)
            events, changes = [e for e, _ in chunk], [c for _, c in chunk]
            await runner.handle([Input(EVENTS, 0, events), Input(PROFILE_CHANGES, 0, changes)])
        return (time.process_time() - started) / len(pairs) * 1e6

    return asyncio.run(run())


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
    pairs = event_changes(args.events)
    changes = [change for _, change in pairs]
    print(f"rules: {rules_rate(changes):,.0f} profile changes/s ({len(changes):,} changes of demo traffic)")
    costs = [runner_cost(pairs) for _ in range(3)]
    each = ", ".join(f"{c:,.0f}" for c in costs)
    print(f"journey runner: {statistics.median(costs):,.0f} µs of CPU per event (median of 3: {each})")
    for n in (10_000, 100_000, 1_000_000):
        scan, tick, rebuild = timer_costs(n)
        print(
            f"{n:>9,} timers: full scan {scan:7.1f} ms per tick; due index {tick:6.2f} ms per tick "
            f"({n // 100:,} due), rebuild after recovery {rebuild:6.1f} ms"
        )


if __name__ == "__main__":
    main()
