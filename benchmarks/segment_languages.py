"""rule-engine against cel-python on the segment conditions of issue 6: evaluations per second of each
condition (medians of several runs), compile time, and what each refuses at compile time.

cel-python is not a dependency of crmhub: ``pip install cel-python`` to run this comparison
(docs/segments.md has the figures and the choice).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import celpy
from celpy import celtypes

from crmhub.core.conditions.fields import profile_view
from crmhub.core.conditions.language import compile_segment, evaluate

NOW = datetime(2026, 6, 1, tzinfo=UTC)
# (rule-engine, CEL): the examples, written in each language
CONDITIONS = [
    ("total_spent >= 500 and days_since(last_order_at) <= 90",
     "total_spent >= 500.0 && days_since(last_order_at) <= 90"),
    ('"electronics" in top_categories', '"electronics" in top_categories'),
    ("rfm.recency >= 4 and rfm.frequency >= 4", "rfm.recency >= 4 && rfm.frequency >= 4"),
    ("open_complaints > 0", "open_complaints > 0"),
    ('consent.email and age_band == "25-34"', 'consent.email && age_band == "25-34"'),
]  # fmt: skip
PROFILE = {
    "profile_id": "P",
    "total_spent": "612.50",
    "last_order_at": (NOW - timedelta(days=12)).isoformat(),
    "top_categories": ["toys", "electronics"],
    "rfm": {"recency": 5, "frequency": 4, "monetary": 4, "score": "544"},
    "open_complaints": [{"message_id": "m-1"}],
    "consent": {"email": {"marketing": {"granted": True, "at": NOW.isoformat(), "source": "web"}}},
    "demographics": {"age_band": "25-34"},
}


def rate(fn: Callable[[], Any], seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            fn()
        done += 200
    return done / elapsed


def rule_engine_case(condition: str) -> Callable[[], Any]:
    d = compile_segment("bench", condition)
    view = profile_view(PROFILE)
    return lambda: evaluate([d], view, NOW)


def cel_case(condition: str) -> Callable[[], Any]:
    env = celpy.Environment()
    program = env.program(
        env.compile(condition),
        functions={"days_since": lambda at: celtypes.IntType((NOW - at).days)},
    )
    view = profile_view(PROFILE)
    activation = {
        "total_spent": celtypes.DoubleType(float(view["total_spent"])),
        "last_order_at": celtypes.TimestampType(view["last_order_at"]),
        "top_categories": celpy.json_to_cel(list(view["top_categories"])),
        "rfm": celpy.json_to_cel(view["rfm"]),
        "open_complaints": celtypes.IntType(view["open_complaints"]),
        "consent": celpy.json_to_cel(view["consent"]),
        "age_band": celtypes.StringType(view["age_band"]),
    }
    return lambda: program.evaluate(activation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="Length of one run of one condition.")
    args = parser.parse_args()
    print(f"{'condition':58} {'rule-engine/s':>14} {'cel-python/s':>13}")
    for ours, cel in CONDITIONS:
        re_case, cel_c = rule_engine_case(ours), cel_case(cel)
        assert re_case() == {"bench"} and bool(cel_c()), f"the languages disagree on {ours!r}"
        re_rate = statistics.median(rate(re_case, args.seconds) for _ in range(args.runs))
        cel_rate = statistics.median(rate(cel_c, args.seconds) for _ in range(args.runs))
        print(f"{ours:58} {re_rate:14,.0f} {cel_rate:13,.0f}")
    for name, compile_one in (("rule-engine", rule_engine_case), ("cel-python", cel_case)):
        started = time.perf_counter()
        for ours, cel in CONDITIONS * 20:
            compile_one(ours if name == "rule-engine" else cel)
        print(f"compile+prepare, {name}: {(time.perf_counter() - started) / (len(CONDITIONS) * 20) * 1000:.2f} ms each")


if __name__ == "__main__":
    main()
