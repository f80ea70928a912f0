"""Which timer-table entries are due, without scanning the whole table on every tick.

A :class:`DueIndex` is a heap of ``(due timestamp, key)`` kept next to a faust table whose values carry
their due time as ``"due"`` (None: nothing left to fire). Every write of an entry adds it; nothing is
ever removed in place: an entry that comes due is checked against the table (deleted, fired or
rescheduled since? then it is skipped), so the heap may hold stale pairs. :meth:`rebuild` starts again
from the table's entries: after a recovery (a restart or a rebalance brings entries the index never
saw), and whenever stale pairs outnumber live entries.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any

Doc = dict[str, Any]


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, key: str, due: float | None) -> None:
        if due is not None:
            heapq.heappush(self._heap, (due, key))

    def rebuild(self, items: Iterable[tuple[str, Doc | None]]) -> None:
        self._heap = [(doc["due"], key) for key, doc in items if doc is not None and doc.get("due") is not None]
        heapq.heapify(self._heap)

    def needs_rebuild(self, live: int) -> bool:
        """Stale pairs outnumber the ``live`` entries (with some slack): time to start again."""
        return len(self._heap) > 2 * live + 1000

    def pop_due(self, now: float, lookup: Callable[[str], Doc | None]) -> list[tuple[str, Doc]]:
        """The entries due at ``now`` (each once), taken out of the index: as the table has them now."""
        due: dict[str, Doc] = {}
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            doc = lookup(key)
            if doc is not None and doc.get("due") is not None and doc["due"] <= now:
                due[key] = doc
        return list(due.items())
