"""When the embedded broker rolls over, how a drain is recognised, and the tables carried across."""

from __future__ import annotations

from pathlib import Path

from crmhub.broker_budget import MIN_INTERVAL_S, Budget, wait_drained
from crmhub.broker_tables import Changelog, load, save


def test_a_rollover_is_due_past_most_of_the_budget_and_not_again_at_once() -> None:
    budget = Budget(100)
    assert not budget.due(79.0, now=10.0)
    assert budget.due(80.0, now=10.0)
    budget.last = 10.0
    assert not budget.due(300.0, now=10.0 + MIN_INTERVAL_S - 1)
    assert budget.due(300.0, now=10.0 + MIN_INTERVAL_S)
    assert not Budget(0).due(10_000.0, now=0.0)  # 0: no budget


class Stages:
    """Lag and counters as the services report them, moving along a script, one step per reading."""

    def __init__(self, lags: list[int], counts: list[int]) -> None:
        self.lag_script, self.count_script, self.t = lags, counts, 0.0

    def lags(self) -> dict[tuple[str, str, int], int]:
        return {("profile", "crm.events.v1", 0): self.lag_script[min(int(self.t), len(self.lag_script) - 1)]}

    def counts(self) -> dict[str, int]:
        return {"profile.events": self.count_script[min(int(self.t), len(self.count_script) - 1)]}

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    def clock(self) -> float:
        return self.t


def drained(stages: Stages, timeout_s: float = 60.0) -> bool:
    return wait_drained(stages.lags, stages.counts, timeout_s=timeout_s, sleep=stages.sleep, clock=stages.clock)


def test_drained_once_lag_is_zero_and_the_counters_stand_still() -> None:
    stages = Stages(lags=[5, 3, 0, 0, 0, 0, 0, 0], counts=[10, 12, 14, 15, 15, 15, 15, 15])
    assert drained(stages)
    assert stages.t >= 6  # the counters moved until the fourth reading, then three steady ones


def test_zero_lag_while_the_counters_still_move_is_not_drained() -> None:
    stages = Stages(lags=[0] * 100, counts=list(range(100)))
    assert not drained(stages, timeout_s=30)


def test_the_tables_keep_the_last_value_per_key_and_forget_deleted_keys(tmp_path: Path) -> None:
    changelog = Changelog("crmhub-notifier-timers-changelog", partitions=4)
    changelog.apply(1, b"cart:p1", b"v1")
    changelog.apply(1, b"cart:p1", b"v2")
    changelog.apply(2, b"sla:p2", b"w1")
    changelog.apply(2, b"sla:p2", None)  # a tombstone
    changelog.apply(3, b"cart:p3", b"x")
    changelog.apply(0, None, b"no key: not table state")
    assert changelog.by_partition() == {1: [(b"cart:p1", b"v2")], 3: [(b"cart:p3", b"x")]}
    save(tmp_path / "tables.json", [changelog])
    (back,) = load(tmp_path / "tables.json")
    assert (back.topic, back.partitions, back.state) == (changelog.topic, 4, changelog.state)


def test_a_budget_the_carried_tables_alone_fill_is_refused_with_what_it_takes() -> None:
    assert Budget(100).too_small(40.0) is None
    assert "CRMHUB_BROKER_MEMORY_MB=100 is too small" in str(Budget(100).too_small(85.0))
