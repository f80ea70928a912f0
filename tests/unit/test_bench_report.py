"""benchmarks/report.py: the percentiles, the CPU table and the met/missed of the benchmark summary."""

from __future__ import annotations

import math

import pytest

from benchmarks.report import Figure, cpu_per_event, cpu_table, number, pct, pct_of_expected, summary


def test_pct_is_the_nearest_rank_at_or_above() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 … 100, shuffled order must not matter
    assert pct(list(reversed(values)), 0.99) == 99.0
    assert pct(values, 0.5) == 50.0
    assert pct(values, 1.0) == 100.0
    assert pct(values, 0.0) == 1.0
    assert pct([7.0], 0.99) == 7.0
    assert math.isnan(pct([], 0.5))


def test_missing_samples_count_as_later_than_any() -> None:
    arrived = [0.1] * 98
    assert pct_of_expected(arrived, 100, 0.5) == 0.1
    assert pct_of_expected(arrived, 100, 0.99) == math.inf  # 2 of 100 missing: the p99 is among them
    assert pct_of_expected([0.1] * 99, 100, 0.99) == 0.1
    assert pct_of_expected([], 0, 0.99) != pct_of_expected([], 0, 0.99)  # NaN: nothing was expected


@pytest.mark.parametrize(
    ("figure", "status"),
    [
        (Figure("rate", 12_000, at_least=10_000), "met"),
        (Figure("rate", 9_999, at_least=10_000), "missed"),
        (Figure("p99", 250, " ms", at_most=250), "met"),
        (Figure("p99", 251, " ms", at_most=250), "missed"),
        (Figure("p99", math.inf, " s", at_most=1), "missed"),
        (Figure("p99", math.nan, " s", at_most=1), "—"),
        (Figure("rss", 2_000, " MB", at_most=1536, judged=False), "—"),
        (Figure("rss of one service", 200, " MB"), "—"),
    ],
)
def test_status_against_the_target(figure: Figure, status: str) -> None:
    assert figure.status == status


def test_summary_lays_out_value_target_and_status() -> None:
    text = summary(
        [Figure("end to end / raw", 0.42, at_least=0.5, note="raw 20,000"), Figure("p99", 180, " ms", at_most=250)]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["figure", "value", "target", "note"]
    assert "0.42" in lines[2] and "≥ 0.50" in lines[2] and "missed" in lines[2] and "raw 20,000" in lines[2]
    assert "180 ms" in lines[3] and "≤ 250 ms" in lines[3] and "met" in lines[3]
    ends = {lines[0].index("value") + 5, lines[2].index("0.42") + 4, lines[3].index("180 ms") + 6}
    assert len(ends) == 1  # the values are right-aligned in one column


def test_cpu_per_event_dearest_first_with_the_total() -> None:
    rows = cpu_per_event({"ingest": 1.0, "profile": 3.0, "redis": 0.0}, events=10_000, wall_s=2.0)
    assert [r[0] for r in rows] == ["profile", "ingest", "redis", "total"]
    assert rows[0] == ("profile", 300.0, 0.75, 1.5)
    assert rows[-1] == ("total", 400.0, 1.0, 2.0)
    assert "µs CPU/event" in cpu_table({"ingest": 1.0}, 1000, 1.0)


def test_numbers_read_as_people_read_them() -> None:
    assert [number(v) for v in (12_345.6, 0.4217, 42.25, 7.0, math.inf, math.nan)] == [
        "12,346", "0.42", "42.2", "7", "∞", "n/a"
    ]  # fmt: skip
