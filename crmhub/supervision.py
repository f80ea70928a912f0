"""Supervision of the hub's children: a service that exits is started again, with backoff, and the hub
gives up with one clear message only when a service keeps crashing.

On the embedded default nothing else restarts a crashed process (in production the container runtime
does), and a hub that stopped because one service died would take the in-memory broker down with it.
The policy is pure (times in, a decision out) so it is unit-tested on plain numbers; the thread that
applies it lives in :class:`crmhub.hub.Hub`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    """Restart after ``first_delay_s``, doubling with each crash in the window up to ``max_delay_s``; give up
    at the ``max_crashes``-th crash within ``window_s`` seconds (a crash loop, not bad luck)."""

    max_crashes: int = 5
    window_s: float = 60.0
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def recent(self, crashes: Sequence[float], now: float) -> int:
        return sum(1 for t in crashes if now - t <= self.window_s)

    def delay_after(self, crashes: Sequence[float], now: float) -> float | None:
        """Seconds to wait before restarting a child whose exits happened at ``crashes`` (monotonic times,
        the latest at ``now``); None when it keeps crashing and the hub should give up."""
        recent = self.recent(crashes, now)
        if recent >= self.max_crashes:
            return None
        return float(min(self.first_delay_s * 2 ** max(recent - 1, 0), self.max_delay_s))

    def give_up_message(self, name: str, crashes: Sequence[float], now: float, last_log: str) -> str:
        return (
            f"{name} keeps crashing ({self.recent(crashes, now)} exits within {self.window_s:.0f} s); "
            f"the hub stops. The end of its log:\n{last_log}"
        )
