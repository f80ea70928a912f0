"""Keeps the embedded broker within ``CRMHUB_BROKER_MEMORY_MB`` (see docs/broker-memory.md).

Tansu keeps every record in memory and applies no retention; only a topic deleted, or the broker
replaced, gives memory back (``../shared/BROKER.md``). So when the broker's resident memory passes the
budget, the hub *rolls over*: it stops the API (the collector's inputs wait in the SDKs' retries; what it
journaled is forwarded again later), lets the services drain what the broker holds (every consumer's lag
zero and nothing more counted for a few seconds), stops them, carries the faust tables over
(:mod:`crmhub.broker_tables`), starts a new, empty broker on the same port and starts everything again.

When the drain was confirmed, the profile service is told that nothing of the old broker is left unread
(its offsets on the new topics start at 0), so it does not hand recent profiles again: the tables came
over whole. When it was not (a stage stuck), the rollover goes on as after a broker loss, which is exact
too but costs the re-hand (``CRMHUB_REBUILD_WINDOW_S``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger("crmhub.broker")

ROLL_AT = 0.8  # of the budget: the rollover itself still takes some memory (the drain, the tables)
MIN_INTERVAL_S = 5.0  # between rollovers: the new broker's services start and join their groups


@dataclass
class Budget:
    """When to roll over: past ``ROLL_AT`` of ``limit_mb``, not sooner than ``MIN_INTERVAL_S`` after the last."""

    limit_mb: int
    last: float | None = None

    def due(self, rss_mb: float, now: float) -> bool:
        if self.limit_mb <= 0 or rss_mb < self.limit_mb * ROLL_AT:
            return False
        return self.last is None or now - self.last >= MIN_INTERVAL_S

    def too_small(self, rss_after_mb: float) -> str | None:
        """Why the budget cannot work, when a new broker holding only the carried tables is already due
        (rolling over again would change nothing)."""
        if rss_after_mb < self.limit_mb * ROLL_AT:
            return None
        return (
            f"CRMHUB_BROKER_MEMORY_MB={self.limit_mb} is too small: a new broker with only the tables "
            f"carried over takes {rss_after_mb:.0f} MB; give it at least {rss_after_mb / ROLL_AT * 2:.0f}"
        )


Lags = Callable[[], Mapping[tuple[str, str, int], int]]
Counts = Callable[[], Mapping[str, int]]


def wait_drained(
    lags: Lags,
    counts: Counts,
    steady: int = 3,
    interval_s: float = 1.0,
    timeout_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Whether every consumer's lag was zero and the services' counters did not move over ``steady``
    readings in a row (they read, then count what they handled), before ``timeout_s``."""
    deadline = clock() + timeout_s
    quiet, before = 0, None
    while clock() < deadline:
        now = dict(counts())
        idle = not any(lags().values())
        quiet = quiet + 1 if idle and now == before else 0
        if quiet >= steady:
            return True
        before = now
        sleep(interval_s)
    log.warning("the services did not drain within %.0f s: the new broker gets the recent profiles again", timeout_s)
    return False


class Laps:
    """How long each phase of a rollover took (what the note reports, so its pause can be told apart)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = self.last = clock()
        self.laps: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        now = self.clock()
        self.laps[phase], self.last = now - self.last, now

    def total(self) -> float:
        return self.clock() - self.started

    def __str__(self) -> str:
        return ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in self.laps.items())
