"""The notifier's per-profile work alone, on demo traffic: profile changes/s through the pure rules the
agent runs on each change (complaint timers, payment alerts, cart and browse waits), and the cost of the
due scan the firing timer makes every 0.25 s over tables of 10k, 100k and 1M entries.

    python benchmarks/notifier.py --events 30000
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from crmhub.settings import Settings, parse_complaint_sla
from services.notifier.abandonment import pending_for
from services.notifier.app import due_entries
from services.notifier.complaints import SlaPolicy, track_complaints
from services.notifier.payments import payment_alerts
from services.profile.fold import fold_events

from fold import demo_events  # type: ignore[import-not-found]  # benchmarks/fold.py, run as a script


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


def scan_ms(entries: int) -> float:
    now = datetime.now(UTC)
    table = {f"cart_abandoned:{i}": {"due": now.timestamp() + (i % 3600) + 1, "pending": {}} for i in range(entries)}
    rounds = 5
    started = time.perf_counter()
    for _ in range(rounds):
        due_entries(table.items(), now)
    return (time.perf_counter() - started) / rounds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=30_000)
    args = parser.parse_args()
    changes = profile_changes(args.events)
    print(f"rules: {rules_rate(changes):,.0f} profile changes/s ({len(changes):,} changes of demo traffic)")
    for n in (10_000, 100_000, 1_000_000):
        ms = scan_ms(n)
        print(f"due scan of {n:>9,} table entries: {ms:7.1f} ms ({ms / 250 * 100:.0f}% of one core at a 0.25 s tick)")


if __name__ == "__main__":
    main()
