"""Metric helpers: bounded dead-letter reason labels, lag from the high watermark, per-batch counting."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from crmhub.core.instance import INSTANCE_ENV
from crmhub.core.metrics import MULTIPROC_ENV, count, lag_of, observe_ages, process_samples, reason_label, samples


def flat(registry: CollectorRegistry, metric: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of one metric family: (sample name, labels, value)."""
    return [(s.name, dict(s.labels), s.value) for m in registry.collect() if m.name == metric for s in m.samples]


@pytest.mark.parametrize(
    ("reason", "location", "label"),
    [
        ("invalid JSON: unexpected character: line 1 column 1 (char 0)", "body", "invalid JSON"),
        ("expected a JSON object, got list", "body", "not a JSON object"),
        ("unexpected KeyError while decoding: 'x'", "body", "unexpected error"),
        ("event e-1 has no profile_id", "body", "no profile_id"),
        ("something else entirely", "", "invalid body"),
        ("unknown event type 'Foo Bar'", "type", "unknown type"),
        ("schema_version 9 is newer than this hub knows", "schema_version", "unsupported schema_version"),
        ("the event carries no usable customer identifier", "identifiers", "no identifier"),
        ("alert delivery to care-hook failed: HTTP 500", "sink:care-hook", "delivery failed"),
        ("Input should be a valid decimal", "properties.total", "invalid properties.total"),
        ("Field required", "properties.products.17.price", "invalid properties.products.*.price"),
        ("Field required", "properties.products.3", "invalid properties.products.*"),
    ],
)
def test_a_reason_label_names_the_kind_and_field_never_the_input(reason: str, location: str, label: str) -> None:
    assert reason_label(reason, location) == label


def test_lag_is_the_high_watermark_minus_the_position_once_known() -> None:
    assert lag_of(120, 100) == 20
    assert lag_of(100, 100) == 0
    assert lag_of(None, 100) is None  # nothing fetched yet: unknown, not zero
    assert lag_of(100, None) is None
    assert lag_of(99, 100) == 0  # a watermark older than the position is not negative lag


def test_a_batch_tally_is_added_once_per_label_set() -> None:
    registry = CollectorRegistry()
    consumed = Counter("t_consumed", "t", ["service", "topic", "type"], registry=registry)
    count(consumed, {("ingest", "raw", "pos.sale"): 3, ("ingest", "raw", "invalid"): 0})
    count(consumed, {("ingest", "raw", "pos.sale"): 2})
    assert samples(registry, "t_consumed_total") == [
        ({"service": "ingest", "topic": "raw", "type": "pos.sale"}, 5.0)
    ]  # no series for a zero amount


def test_a_batch_of_ages_gives_the_figures_of_one_observation_per_event() -> None:
    registry = CollectorRegistry()
    batched = Histogram("t_batched", "t", ["service"], buckets=(0.1, 1.0), registry=registry)
    single = Histogram("t_single", "t", ["service"], buckets=(0.1, 1.0), registry=registry)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ages = [0.05, 0.1, 0.5, 1.0, 3.0, -2.0]  # on a bound, above the last, a clock ahead of ours
    observe_ages(batched, "profile", now, [*(now - timedelta(seconds=a) for a in ages), None])  # None: no time
    for a in ages:
        single.labels("profile").observe(max(a, 0.0))

    def figures(name: str) -> list[tuple[str, str, float]]:
        return [(n, labels.get("le", ""), v) for n, labels, v in flat(registry, name) if not n.endswith("_created")]

    assert figures("t_batched") == [(n.replace("single", "batched"), le, v) for n, le, v in figures("t_single")]
    assert ("t_batched_count", "", 6.0) in figures("t_batched")
    assert [v for n, le, v in figures("t_batched") if le] == [3.0, 5.0, 6.0]  # cumulative: <=0.1, <=1, +Inf


def test_one_process_s_samples_are_read_apart_from_the_others(tmp_path: Path) -> None:
    """Two processes (two instances of one service) write metric files in one directory: each one's own
    figures can be read apart, while the collector the API uses adds the counters up and keeps one memory
    gauge per instance."""
    script = (
        "import sys; from crmhub.core import metrics; "
        "metrics.CONSUMED.labels('profile', 'crm.events.v1', 'order').inc(int(sys.argv[1])); "
        "metrics.record_memory('profile')"
    )
    consumed = {}
    for n, amount in ((1, 3), (2, 5)):
        env = {**os.environ, MULTIPROC_ENV: str(tmp_path), INSTANCE_ENV: f"profile-{n}"}
        proc = subprocess.Popen([sys.executable, "-c", script, str(amount)], env=env)
        assert proc.wait(60) == 0
        consumed[proc.pid] = amount
    for pid, amount in consumed.items():
        assert [v for _, v in process_samples(tmp_path, pid, "crmhub_events_consumed_total")] == [amount]
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    assert [v for _, v in samples(registry, "crmhub_events_consumed_total")] == [8]
    memory = {labels["instance"] for labels, _ in samples(registry, "crmhub_process_resident_memory_bytes")}
    assert memory == {"profile-1", "profile-2"}
