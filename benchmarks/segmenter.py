"""Segmenter benchmark on the embedded stack: profile changes evaluated per second with 50 segments.

Starts Tansu and Redis and the segmenter alone, with a segment file of 50 segments (the shipped library
and variations of it: money thresholds, categories, tiers, RFM, consent, clock windows). Synthetic
profiles are published to crm.profile-changes.v1 in batches, exactly as the profile service does, and
each phase is timed from its first publish until the segmenter's ``segmenter.evaluated`` counter has
counted every change:

- new: N profiles never seen (each evaluated against all 50 segments);
- changes: N later versions of the same profiles, each changing what an order changes (order count,
  spend, last order time, categories) and keeping the rest (the field index evaluates only the segments
  reading those fields, plus the clock-dependent ones).

For reference it also times the pure evaluation (``evaluate_change``, no Redis, no Kafka) of the same
changes in the benchmark's own process.

    python benchmarks/segmenter.py --profiles 20000 --runs 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis
import yaml
from measure import wait_counter  # benchmarks/measure.py

from crmhub.core import kafka as kafka_io
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.stats import read_counts
from crmhub.core.topics import PROFILE_CHANGES
from crmhub.hub import running_hub
from services.segmenter.engine import Catalog, evaluate_change
from services.segmenter.rules import load_definitions

CATEGORIES = ["electronics", "toys", "garden", "fashion", "books", "beauty", "sports", "food"]
TIERS = ["member", "silver", "gold", "platinum"]
BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
SEGMENTS = 50


def fifty_segments() -> list[dict[str, str]]:
    """The first 50 of the shipped library and variations of it (the library grows: the figure stays one
    of 50 segments)."""
    shipped = [{"name": d.name, "condition": d.condition} for d in load_definitions()]
    extra = [
        *({"name": f"spent_over_{n}", "condition": f"total_spent >= {n}"} for n in (50, 100, 250, 1000, 2000)),
        *({"name": f"likes_{c}", "condition": f'"{c}" in top_categories'} for c in CATEGORIES),
        *({"name": f"ordered_within_{d}d", "condition": f"days_since(last_order_at) < {d}"} for d in (7, 30, 60, 180)),
        *(
            {"name": f"band_{b.replace('+', 'plus').replace('-', '_')}", "condition": f'age_band == "{b}"'}
            for b in BANDS
        ),
        {"name": "sms_marketable", "condition": "consent.sms == true"},
        {"name": "rfm_top_monetary", "condition": "rfm.monetary == 5"},
        {"name": "frequent_low_value", "condition": "order_count >= 5 and average_order_value < 20"},
        {"name": "refunders", "condition": "refund_count >= 2"},
        {"name": "store_only", "condition": "pos_orders > 0 and web_orders == 0"},
        {"name": "web_only", "condition": "web_orders > 0 and pos_orders == 0"},
        {"name": "big_cart", "condition": "cart_value >= 200"},
        {"name": "browsers", "condition": "product_views >= 10 and order_count == 0"},
        {"name": "gold_and_lapsing", "condition": 'loyalty_tier == "gold" and days_since(last_order_at) >= 60'},
    ]
    segments = (shipped + extra)[:SEGMENTS]
    assert len(segments) == SEGMENTS, len(segments)
    return segments


def write_segments_file(path: Path) -> Path:
    """The 50 segments as a segments file a hub loads (``Settings.segments_file``)."""
    path.write_text(yaml.safe_dump({"segments": fifty_segments()}))
    return path


def profile(rng: random.Random, pid: str, version: int, now: datetime) -> dict[str, Any]:
    orders = version + rng.randint(0, 3)
    spent = round(rng.uniform(5, 300) * orders, 2)
    return {
        "profile_id": pid,
        "version": version,
        "created_at": (now - timedelta(days=400)).isoformat(),
        "updated_at": now.isoformat(),
        "order_count": orders,
        "web_orders": orders // 2,
        "pos_orders": orders - orders // 2,
        "total_spent": f"{spent:.2f}",
        "net_revenue": f"{spent:.2f}",
        "average_order_value": f"{spent / orders:.2f}",
        "first_order_at": (now - timedelta(days=rng.randint(30, 400))).isoformat(),
        "last_order_at": (now - timedelta(days=rng.randint(0, 200), seconds=rng.randint(0, 86400))).isoformat(),
        "top_categories": rng.sample(CATEGORIES, 3),
        "product_views": rng.randint(0, 30),
        "cart": {"items": [], "value": "0"},
        "loyalty": {"earned": int(spent), "balance": int(spent), "tier": rng.choice(TIERS)},
        "rfm": {
            **(scores := {"recency": rng.randint(1, 5), "frequency": rng.randint(1, 5), "monetary": rng.randint(1, 5)}),
            "score": "".join(str(v) for v in scores.values()),
            "computed_at": now.isoformat(),
        },
        "demographics": {"age_band": rng.choice(BANDS)},
        "traits": {"children": rng.randint(0, 3)},
        "consent": {"email": {"marketing": {"granted": rng.random() < 0.6, "at": now.isoformat(), "source": "web"}}},
    }


def changed(rng: random.Random, doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The profile after one more order: what the order changes, the rest kept."""
    spent = float(doc["total_spent"]) + rng.uniform(5, 300)
    orders = doc["order_count"] + 1
    return {
        **doc,
        "version": doc["version"] + 1,
        "updated_at": now.isoformat(),
        "order_count": orders,
        "web_orders": doc["web_orders"] + 1,
        "total_spent": f"{spent:.2f}",
        "net_revenue": f"{spent:.2f}",
        "average_order_value": f"{spent / orders:.2f}",
        "last_order_at": now.isoformat(),
        "top_categories": rng.sample(CATEGORIES, 3),
    }


def run_phase(settings: Settings, r: redis.Redis, docs: list[dict[str, Any]], timeout_s: float) -> float:
    """Publish the docs as the profile service does; profile changes per second until all evaluated."""
    producer = kafka_io.producer(settings, linger_ms=20)
    partitions = len(producer.partitions_for(PROFILE_CHANGES))
    target = read_counts(r).get("segmenter.evaluated", 0) + len(docs)
    started = time.monotonic()
    for start in range(0, len(docs), 2000):
        items = [(d["profile_id"], orjson.dumps(d)) for d in docs[start : start + 2000]]
        kafka_io.send_batched(producer, PROFILE_CHANGES, items, partitions)
    producer.flush()
    producer.close()
    done = wait_counter(r, "segmenter.evaluated", target, timeout_s)
    if done is None:
        raise SystemExit(f"the segmenter did not evaluate {len(docs)} changes within {timeout_s:.0f} s")
    return len(docs) / (done - started)


def segmenter_settings(tmp: Path, segments_file: Path) -> Settings:
    return Settings(
        data_dir=tmp / "data",
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        segments_file=segments_file,
    )


def service_rates(
    settings: Settings, r: redis.Redis, rng: random.Random, profiles: int, runs: int, timeout_s: float
) -> tuple[list[float], list[float]]:
    """The running segmenter's rates, per run: (new profiles, changes of known profiles) per second."""
    now = datetime.now(UTC)
    warmup = [profile(rng, f"warm-{i}", 1, now) for i in range(200)]
    run_phase(settings, r, warmup, timeout_s)  # waits out the group join and start-up
    new_rates, change_rates = [], []
    for run in range(runs):
        docs = [profile(rng, f"p{run}-{i}", 1, now) for i in range(profiles)]
        new_rates.append(run_phase(settings, r, docs, timeout_s))
        docs = [changed(rng, d, now) for d in docs]
        change_rates.append(run_phase(settings, r, docs, timeout_s))
        print(f"run {run + 1}: new profiles {new_rates[-1]:,.0f}/s, changes {change_rates[-1]:,.0f}/s", flush=True)
    return new_rates, change_rates


def pure_rates(segments_file: Path, docs: list[dict[str, Any]], rng: random.Random) -> tuple[float, float]:
    """(new, changes) per second of decoding (the topic's JSON to typed sources, as the service does) and
    evaluate_change alone, in this process, on a fresh catalog."""
    catalog = Catalog(load_definitions(segments_file))
    now = datetime.now(UTC)
    records = [orjson.dumps([d]) for d in docs]
    started = time.perf_counter()
    outs = [evaluate_change(catalog, catalog.decode(r)[0], None, set(), now) for r in records]
    new = len(docs) / (time.perf_counter() - started)
    later = [orjson.dumps([changed(rng, d, now)]) for d in docs]
    started = time.perf_counter()
    for record, out in zip(later, outs, strict=True):
        assert out is not None
        evaluate_change(catalog, catalog.decode(record)[0], out.prior, out.after, now)
    return new, len(docs) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    rng = random.Random(6)
    with tempfile.TemporaryDirectory(prefix="crmhub-bench-seg-") as tmp:
        segments_file = write_segments_file(Path(tmp) / "segments.yaml")
        with running_hub(segmenter_settings(Path(tmp), segments_file), services=("segmenter",)) as hub:
            r = redis.Redis.from_url(hub.settings.redis_dsn)
            new_rates, change_rates = service_rates(hub.settings, r, rng, args.profiles, args.runs, args.timeout)
            counts = read_counts(r)
            print(f"segments defined: {SEGMENTS}; entries {counts.get('segmenter.entered', 0):,}, "
                  f"exits {counts.get('segmenter.exited', 0):,}")  # fmt: skip
            print(f"median, new profiles (all 50 segments evaluated): {statistics.median(new_rates):,.0f} changes/s")
            print(f"median, changes of known profiles (field index): {statistics.median(change_rates):,.0f} changes/s")
        now = datetime.now(UTC)
        pure = [pure_rates(segments_file, [profile(rng, f"q{i}", 1, now) for i in range(5000)], rng) for _ in range(3)]
        print(
            f"evaluation alone (no I/O), median of 3: new {statistics.median(p[0] for p in pure):,.0f}/s, "
            f"changes {statistics.median(p[1] for p in pure):,.0f}/s"
        )


if __name__ == "__main__":
    main()
