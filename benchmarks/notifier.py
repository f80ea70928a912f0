"""The notifier's per-profile work alone, on demo traffic: profile changes/s through the pure rules the
agent runs on each change (complaint timers, payment alerts, cart and browse waits), and, for timer
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
from decimal import Decimal
from typing import Any

import orjson
from fold import demo_events  # type: ignore[import-not-found]  # benchmarks/fold.py, run as a script

from crmhub.core.setting_values import parse_complaint_sla
from crmhub.core.settings import Settings
from services.notifier.abandonment import pending_for
from services.notifier.complaints import SlaPolicy, track_complaints
from services.notifier.payments import payment_alerts
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
    settings = Settings()
    sla = SlaPolicy(parse_complaint_sla(settings.complaint_sla), Decimal(settings.complaint_vip_spend))
    delay, window, now = timedelta(hours=1), timedelta(hours=1), datetime.now(UTC)
    timers: dict[str, Any] = {}
    started = time.perf_counter()
    for profile in changes:
        pid = profile["profile_id"]
        timers[pid], _alerts = track_complaints(timers.get(pid, {}), profile, sla, now)
        payment_alerts(profile, window, now)
        pending_for("cart_abandoned", profile, delay)
        pending_for("browse_abandoned", profile, delay)
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
