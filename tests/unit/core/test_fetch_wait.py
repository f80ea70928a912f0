"""How a kafka-python consumer paces its fetches: the wait it asks the broker for
(``crmhub.core.kafka.FetchWait``) and its linger between polls (``Linger``)."""

from __future__ import annotations

from crmhub.core.kafka import FETCH_MAX_WAIT_MS, IDLE_AFTER_S, IDLE_FETCH_WAIT_MS, LINGER_FROM, FetchWait, Linger


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


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


def test_a_consumer_lingers_after_a_steady_partial_batch_and_not_after_a_trickle_or_a_full_one() -> None:
    clock = Clock()
    linger = Linger(0.1, clock, clock.sleep)
    assert LINGER_FROM == 10
    linger.before_poll()
    assert clock.slept == []  # the first poll goes at once
    clock.now += 0.03  # the poll and its batch took 30 ms
    linger.after_poll(35, 2000)  # records come steadily: wait for more
    linger.before_poll()
    assert clock.slept == [0.07]  # 100 ms after the last poll began
    linger.after_poll(LINGER_FROM - 1, 2000)  # a trickle: latency matters more than batching
    linger.before_poll()
    linger.after_poll(2000, 2000)  # a full batch: behind, catch up
    linger.before_poll()
    assert clock.slept == [0.07]
    linger.after_poll(LINGER_FROM, 2000)
    clock.now += 0.25  # the batch took longer than the linger: nothing left to wait
    linger.before_poll()
    assert clock.slept == [0.07]


def test_no_linger_polls_at_once() -> None:
    clock = Clock()
    linger = Linger(0.0, clock, clock.sleep)
    for _ in range(3):
        linger.before_poll()
        linger.after_poll(50, 2000)
    assert clock.slept == []
