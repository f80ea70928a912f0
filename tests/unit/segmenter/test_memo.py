"""Remembered results: what a condition's key holds, and that remembering never changes a result."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crmhub.core.conditions.clock import TIME_FUNCTIONS
from crmhub.core.conditions.fields import profile_view
from crmhub.core.conditions.language import compile_segment, evaluate
from crmhub.core.conditions.memo import KeyPart
from services.segmenter.engine import Catalog, serialise
from services.segmenter.rules import load_definitions

DAYS = TIME_FUNCTIONS["days_since"]

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TRICKY = {
    "either": "total_spent >= 500 or total_spent == 42",
    "fraction": "total_spent > 10.5 and order_count != 3",
    "arithmetic": "order_count * 2 > 5",
    "lapsed": "order_count > 0 and days_since(last_order_at) >= 90",
    "weekly": "days_since(last_order_at) % 7 == 0",
    "cart": "cart_items > 0 and hours_since(cart_updated_at) >= 1",
    "nested": "rfm.recency >= 4 and consent.email",
    "nullable": "age != null and age > 30",
    "mixed": "days_since(last_order_at) < 30 and last_order_at != null",
}


def test_comparisons_with_constants_key_on_sides_others_on_whole_values() -> None:
    lapsed = compile_segment("s", TRICKY["lapsed"]).key
    assert lapsed == (
        KeyPart("last_order_at", (Decimal(90),), DAYS),
        KeyPart("order_count", (Decimal(0),)),
    )
    assert compile_segment("s", TRICKY["arithmetic"]).key == (KeyPart("order_count"),)
    assert compile_segment("s", TRICKY["nested"]).key == (KeyPart("consent"), KeyPart("rfm"))
    assert compile_segment("s", TRICKY["weekly"]).key is None  # not a comparison: evaluated every time
    mixed = compile_segment("s", TRICKY["mixed"]).key
    assert mixed == (KeyPart("last_order_at", (Decimal(30),), DAYS), KeyPart("last_order_at"))


def random_profile(rng: random.Random, i: int) -> dict[str, object]:
    def maybe_time(days: int) -> str | None:
        return (
            None
            if rng.random() < 0.1
            else (NOW - timedelta(days=rng.randint(0, days), hours=rng.random() * 24)).isoformat()
        )

    return {
        "profile_id": f"p{i}",
        "order_count": rng.choice([0, 1, 2, 3, 4, 7]),
        "total_spent": rng.choice(["0", "10.50", "10.51", "42", "42.00", "499.99", "500", "731.20"]),
        "last_order_at": maybe_time(120),
        "cart": {
            "items": [{"product_id": "p", "price": "1", "quantity": rng.randint(0, 2)}],
            "updated_at": maybe_time(1),
        },
        "rfm": rng.choice(
            [
                None,
                {
                    "recency": (r := rng.randint(1, 5)),
                    "frequency": 1,
                    "monetary": 1,
                    "score": f"{r}11",
                    "computed_at": NOW.isoformat(),
                },
            ]
        ),
        "consent": {"email": {"marketing": {"granted": rng.random() < 0.5, "at": NOW.isoformat(), "source": "web"}}},
        "traits": {"age": rng.choice([None, 30, 31, "x"])},
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_remembered_results_equal_evaluated_ones(seed: int) -> None:
    rng = random.Random(seed)
    defs = load_definitions() + [compile_segment(name, cond) for name, cond in TRICKY.items()]
    catalog = Catalog(defs)
    for i in range(3000):
        view = profile_view(random_profile(rng, i))
        now = NOW + timedelta(hours=rng.randint(0, 24 * 40))
        assert catalog.evaluate(defs, view, serialise(view), now) == evaluate(defs, view, now), view
    assert sum(map(len, catalog.memo.values())) < 3000 * len(catalog.memo) / 10  # and they are remembered
