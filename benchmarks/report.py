"""What the benchmarks print: percentiles, the CPU-per-event table and the summary against the targets.

Pure functions (no I/O, no clock): the benchmark scripts measure, these only compute and lay out, and
tests/unit/test_bench_report.py checks them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Status = str  # "met", "missed" or "—" (informational, or not comparable with the target)


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 ≤ q ≤ 1) by the nearest rank at or above it; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1 if q > 0 else 0)]


def pct_of_expected(values: Sequence[float], expected: int, q: float) -> float:
    """The q-quantile over ``expected`` samples of which only ``values`` arrived: the missing ones count
    as later than any seen (inf), so a quantile that falls among them is inf, not a flattering figure."""
    padded = [*values, *([math.inf] * max(0, expected - len(values)))]
    return pct(padded, q)


@dataclass(frozen=True)
class Figure:
    """One line of the summary: a measured value beside its target (``at_most`` or ``at_least``)."""

    name: str
    value: float
    unit: str = ""
    at_least: float | None = None
    at_most: float | None = None
    note: str = ""
    judged: bool = True  # False: shown beside the target, but measured where the target does not apply

    @property
    def status(self) -> Status:
        if not self.judged or (self.at_least is None and self.at_most is None) or math.isnan(self.value):
            return "—"
        if self.at_least is not None and self.value < self.at_least:
            return "missed"
        if self.at_most is not None and self.value > self.at_most:
            return "missed"
        return "met"

    @property
    def target(self) -> str:
        if self.at_least is not None:
            return f"≥ {number(self.at_least)}{self.unit}"
        if self.at_most is not None:
            return f"≤ {number(self.at_most)}{self.unit}"
        return ""


def number(value: float) -> str:
    """A figure as people read it: thousands separated, decimals only where they say something."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table, columns padded to their widest cell (the first and the last left-aligned, the
    figures between them right-aligned)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, ["-" * w for w in widths], *rows]:
        cells = [
            str(c).ljust(w) if i in (0, len(widths) - 1) else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def summary(figures: Sequence[Figure]) -> str:
    rows = [[f.name, number(f.value) + f.unit, f.target, f.status, f.note] for f in figures]
    return table(["figure", "value", "target", "", "note"], rows)


def cpu_per_event(cpu_s: Mapping[str, float], events: int, wall_s: float) -> list[tuple[str, float, float, float]]:
    """Per process: (name, µs of CPU per event, share of all the processes' CPU, cores used over the
    window), dearest first; the total last."""
    total = sum(cpu_s.values())
    rows = [
        (name, 1e6 * s / events, s / total if total else 0.0, s / wall_s)
        for name, s in sorted(cpu_s.items(), key=lambda kv: -kv[1])
    ]
    return [*rows, ("total", 1e6 * total / events, 1.0 if total else 0.0, total / wall_s)]


def cpu_table(cpu_s: Mapping[str, float], events: int, wall_s: float) -> str:
    rows = [
        [name, f"{us:,.0f}", f"{share:.0%}", f"{cores:.2f}", "#" * round(20 * share) if name != "total" else ""]
        for name, us, share, cores in cpu_per_event(cpu_s, events, wall_s)
    ]
    return table(["process", "µs CPU/event", "share", "cores", ""], rows)
