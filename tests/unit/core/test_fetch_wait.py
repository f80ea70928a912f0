"""The fetch wait a kafka-python consumer asks the broker for (``crmhub.core.kafka.FetchWait``)."""

from __future__ import annotations

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
