"""Flow counters and recent items kept in Redis, so ``crmhub up`` and the API can show what flows.

Services add to them in the same Redis pipeline as their other writes of a batch: one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATS_KEY = "crmhub:stats"
RECENT_DEADLETTERS = "crmhub:recent:deadletters"
RECENT_ALERTS = "crmhub:recent:alerts"
RECENT_KEEP = 200
RESTARTS_PREFIX = "hub.restarts."  # + a child's name: how often the hub's supervisor restarted it


def add_counts(pipe: Any, counts: Mapping[str, int]) -> None:
    for name, value in counts.items():
        if value:
            pipe.hincrby(STATS_KEY, name, value)


def push_recent(pipe: Any, key: str, items: list[bytes], keep: int = RECENT_KEEP) -> None:
    if items:
        pipe.lpush(key, *items)
        pipe.ltrim(key, 0, keep - 1)


def read_counts(redis: Any) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis.hgetall(STATS_KEY).items()}


def restarts(counts: Mapping[str, int]) -> dict[str, int]:
    """Restarts per child (service or API) in the stats ``counts``."""
    return {k.removeprefix(RESTARTS_PREFIX): v for k, v in counts.items() if k.startswith(RESTARTS_PREFIX)}
