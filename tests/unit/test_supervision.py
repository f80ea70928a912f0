"""The hub's supervision: the restart policy on plain numbers, and ``Hub.supervise`` on real child processes
(a child that exits at once, one that runs) with a clock the test moves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crmhub.core.settings import Settings
from crmhub.hub import Child, Hub
from crmhub.supervision import RestartPolicy

EXITS = ["-c", "raise SystemExit(3)"]
RUNS = ["-c", "import time; time.sleep(60)"]


def test_backoff_doubles_with_each_recent_crash_up_to_the_cap() -> None:
    policy = RestartPolicy(max_crashes=10, window_s=60, first_delay_s=0.5, max_delay_s=4)
    crashes: list[float] = []
    delays = []
    for t in range(6):
        crashes.append(float(t))
        delays.append(policy.delay_after(crashes, float(t)))
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_gives_up_at_the_fifth_crash_within_a_minute_but_not_when_they_are_spread_out() -> None:
    policy = RestartPolicy()
    assert policy.delay_after([0, 10, 20, 30], 30) is not None
    assert policy.delay_after([0, 10, 20, 30, 40], 40) is None
    spread = [0.0, 70.0, 140.0, 210.0, 280.0, 350.0]  # one crash every 70 s: bad luck, not a loop
    assert policy.delay_after(spread, 350.0) == policy.first_delay_s


def test_crashes_outside_the_window_no_longer_lengthen_the_backoff() -> None:
    policy = RestartPolicy(first_delay_s=1, max_delay_s=30)
    assert policy.delay_after([0, 1, 2, 100], 100) == 1


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    (tmp_path / "logs").mkdir()
    (tmp_path / "metrics").mkdir()
    # no Redis answers on this port: restarts are then not counted, and still happen
    return Hub(Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0"), policy=RestartPolicy(window_s=60))


def wait_exit(child: Child) -> None:
    child.proc.wait(timeout=30)


def test_a_supervised_child_that_exits_is_restarted_after_its_backoff(hub: Hub) -> None:
    child = hub.spawn("svc", EXITS, supervised=True)
    first = child.proc
    wait_exit(child)
    hub.supervise(100.0)
    assert child.restart_at == 100.5 and child.proc is first  # waits out the backoff
    hub.supervise(100.4)
    assert child.proc is first
    hub.supervise(100.6)
    assert child.proc is not first and child.restart_at is None
    assert "restarted by the hub" in child.log_path.read_text()
    assert any("svc restarted" in note for note in hub.notes)
    assert hub.failure is None


def test_a_child_that_keeps_crashing_makes_the_hub_give_up_with_one_clear_message(hub: Hub) -> None:
    child = hub.spawn("svc", ["-c", "print('bad setting'); raise SystemExit(2)"], supervised=True)
    now = 0.0
    for _ in range(4):
        wait_exit(child)
        hub.supervise(now)
        now += 10  # past every backoff
        hub.supervise(now)
    wait_exit(child)
    hub.supervise(now)
    assert hub.failure is not None
    assert hub.failure.startswith("svc keeps crashing (5 exits within 60 s)")
    assert "bad setting" in hub.failure


def test_running_and_unsupervised_children_are_left_alone(hub: Hub) -> None:
    running = hub.spawn("svc", RUNS, supervised=True)
    done = hub.spawn("traffic", EXITS)
    wait_exit(done)
    try:
        hub.supervise(time.monotonic())
        assert running.restart_at is None and not running.crashes
        assert done.restart_at is None and not done.crashes
    finally:
        hub.stop_children()
    assert running.proc.poll() is not None


def test_supervision_runs_in_the_background_and_stops_with_the_block(hub: Hub) -> None:
    hub.policy = RestartPolicy(first_delay_s=0.05)
    child = hub.spawn("svc", RUNS, supervised=True)
    first = child.proc
    with hub.supervising(interval_s=0.02):
        first.kill()
        deadline = time.monotonic() + 10
        while child.proc is first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.proc is not first and child.proc.poll() is None
    hub.stop_children()
