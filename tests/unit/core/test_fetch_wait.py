"""The fetch wait a consumer asks the broker for (``crmhub.core.kafka.FetchWait``), and its setting on
faust's aiokafka fetcher (``crmhub.core.faust_fixes.adapt_fetch_wait``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from crmhub.core.faust_fixes import _fetch_waits, adapt_fetch_wait
from crmhub.core.kafka import FETCH_MAX_WAIT_MS, IDLE_AFTER_S, IDLE_FETCH_WAIT_MS, FetchWait


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_consumer_fetches_briefly_while_records_come_and_waits_longer_once_idle() -> None:
    clock = Clock()
    wait = FetchWait(clock)
    assert (FETCH_MAX_WAIT_MS, IDLE_FETCH_WAIT_MS, IDLE_AFTER_S) == (20, 200, 2.0)
    assert wait.after_poll(0) == FETCH_MAX_WAIT_MS  # a consumer starts as a busy one
    clock.now += IDLE_AFTER_S - 0.1
    assert wait.after_poll(0) == FETCH_MAX_WAIT_MS
    clock.now += 0.2
    assert wait.after_poll(0) == IDLE_FETCH_WAIT_MS  # no record for 2 s
    assert wait.after_poll(3) == FETCH_MAX_WAIT_MS  # the first records of a busy spell
    clock.now += IDLE_AFTER_S - 0.1
    assert wait.after_poll(0) == FETCH_MAX_WAIT_MS
    clock.now += 0.2
    assert wait.after_poll(0) == IDLE_FETCH_WAIT_MS


class Worker:
    """A faust consumer as ``adapt_fetch_wait`` sees it: a consumer thread whose aiokafka consumer, once
    started, has a fetcher."""

    def __init__(self, fetcher: Any) -> None:
        self._thread = SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher) if fetcher else None)


def test_a_faust_worker_s_fetcher_gets_the_wait_of_its_fetches() -> None:
    clock = Clock()
    fetcher = SimpleNamespace(_fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    worker = Worker(fetcher)
    _fetch_waits[worker] = FetchWait(clock)  # type: ignore[index]
    clock.now += IDLE_AFTER_S + 1
    adapt_fetch_wait(worker, 0)  # type: ignore[arg-type]
    assert fetcher._fetch_max_wait_ms == IDLE_FETCH_WAIT_MS
    adapt_fetch_wait(worker, 5)  # type: ignore[arg-type]
    assert fetcher._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
    adapt_fetch_wait(Worker(None), 0)  # type: ignore[arg-type]  # not started yet: nothing to set
