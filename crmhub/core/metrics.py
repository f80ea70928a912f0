"""Prometheus metrics of every crmhub process (``crmhub_`` prefix), and the one aggregated view the API serves.

Every service process updates the metrics below; with ``PROMETHEUS_MULTIPROC_DIR`` set (``crmhub up`` sets
it to ``<data dir>/metrics`` and clears it at start; docker-compose mounts one shared volume there) each
process writes its values to memory-mapped files in that directory, and the API's ``/metrics`` adds them up
(prometheus-client multiprocess mode). Files are named by ``<hostname>-<pid>``, so containers sharing the
volume never write to the same file. Updates are counted per batch wherever the code has a batch.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY

from crmhub.core.instance import instance_name, service_of

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def process_identifier(pid: int | None = None) -> str:
    """What names a process's files (this one's by default): the pid alone collides between containers
    sharing a volume."""
    return f"{socket.gethostname().replace('_', '-')}-{pid or os.getpid()}"


if os.environ.get(MULTIPROC_ENV):
    values.ValueClass = values.MultiProcessValue(process_identifier)  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

CONSUMED = Counter("crmhub_events_consumed", "Records or events a service consumed", ["service", "topic", "type"])
PRODUCED = Counter("crmhub_events_produced", "Records or events a service produced", ["service", "topic", "type"])
LATENCY = Histogram(
    "crmhub_event_latency_seconds",
    "Seconds from an event's receipt by the hub to a service's effect (ingest: forwarded; profile: committed)",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "crmhub_batch_seconds", "Seconds a service spent handling one batch", ["service"], buckets=LATENCY_BUCKETS
)
DEADLETTERS = Counter("crmhub_deadletters", "Dead letters written, by reason", ["service", "reason"])
DUPLICATES = Counter("crmhub_duplicates_dropped", "Events dropped as duplicates (event id seen before)", ["service"])
MERGES = Counter("crmhub_profile_merges", "Profiles merged into another (identity links)", ["service"])
SEGMENT_CHANGES = Counter("crmhub_segment_changes", "Profiles entering or exiting a segment", ["segment", "change"])
ALERTS_RAISED = Counter("crmhub_alerts_raised", "Alerts raised (claimed for delivery), by kind", ["kind"])
DELIVERIES = Counter(
    "crmhub_alert_deliveries", "Alert deliveries per sink: delivered, failed or rate_limited", ["sink", "status"]
)
LAG = Gauge(
    "crmhub_consumer_lag",
    "Records not yet handled: the fetch high watermark minus the consumer's position, "
    "plus (faust) those fetched and not acknowledged",
    ["service", "topic", "partition"],
    multiprocess_mode="mostrecent",  # a partition moved to another instance: the newer owner's figure wins
)
MEMORY = Gauge(
    "crmhub_process_resident_memory_bytes",
    "Resident memory of a service process (one series per instance, crmhub.core.instance)",
    ["service", "instance"],
    multiprocess_mode="mostrecent",  # an instance restarted: its new process's figure wins
)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int | None = None) -> int | None:
    """A process's resident memory (this one's by default; Linux ``/proc``), or None where there is no
    such file (not Linux, or the process is gone)."""
    try:
        return int(Path(f"/proc/{pid or 'self'}/statm").read_text().split()[1]) * _PAGE
    except OSError:
        return None


def rss_mb(pid: int) -> float | None:
    rss = resident_bytes(pid)
    return None if rss is None else rss / 2**20


def count(metric: Counter, tally: Mapping[tuple[str, ...], int]) -> None:
    """Add a batch's tally (label values -> amount) to a counter: one update per label set, not per event."""
    for labels, amount in tally.items():
        if amount:
            metric.labels(*labels).inc(amount)


def count_types(service: str, topic: str, types: Iterable[str]) -> Tally[tuple[str, ...]]:
    """The (service, topic, type) tally of a batch's event types."""
    return Tally((service, topic, t) for t in types)


def observe_ages(histogram: Histogram, service: str, now: datetime, times: Iterable[datetime | None]) -> None:
    """Observe, per event, the seconds from its time (its receipt) to ``now``; events without one are left out.

    The same figures as one ``observe`` per event, written once per bucket a batch: in multiprocess mode
    every update is a locked write to a memory-mapped file (about 4 µs, two per observation), so a batch
    of 2,000 events costs about 15 updates instead of 4,000. It fills prometheus-client's own bucket
    values (``_upper_bounds``, ``_buckets``, ``_sum``: how ``Histogram.observe`` stores an observation)."""
    child = histogram.labels(service)
    bounds: list[float] = child._upper_bounds
    per_bucket = [0] * len(bounds)
    total = 0.0
    for at in times:
        if at is not None:
            seconds = max((now - at).total_seconds(), 0.0)
            per_bucket[bisect_left(bounds, seconds)] += 1  # the first bucket whose bound is >= seconds
            total += seconds
    for value, n in zip(child._buckets, per_bucket, strict=True):
        if n:
            value.inc(n)
    if any(per_bucket):
        child._sum.inc(total)


def record_lag(service: str, lags: Mapping[tuple[str, int], int]) -> None:
    for (topic, partition), lag in lags.items():
        LAG.labels(service, topic, str(partition)).set(lag)


def record_memory(service: str) -> None:
    rss = resident_bytes()
    if rss is not None:
        MEMORY.labels(service, instance_name(service)).set(rss)


def record_consumer(service: str, lags: Mapping[tuple[str, int], int]) -> None:
    """A consumer's lag per partition and the process's memory: what every service meters each second
    (the kafka-python runtime and the faust app alike). The memory first: a scrape that reads a service's
    first lag in between then has its memory too (one CI run read the lag of four services, the memory of
    three)."""
    record_memory(service)
    record_lag(service, lags)


def lag_of(highwater: int | None, position: int | None) -> int | None:
    """Records behind: None until the first fetch brought a high watermark (Tansu's end offsets are wrong,
    so the watermark of fetch responses is the figure to trust, see ../shared/BROKER.md)."""
    if highwater is None or position is None:
        return None
    return max(highwater - position, 0)


_INDEX = re.compile(r"\.\d+(?=\.|$)")


def reason_label(reason: str, location: str) -> str:
    """A dead letter's reason as a label of few values: the free text names input values (and would make
    a new time series each), so it is reduced to its kind and the field it concerns."""
    if location.startswith("sink:"):
        return "delivery failed"
    if location == "type":
        return "unknown type"
    if location == "schema_version":
        return "unsupported schema_version"
    if location == "identifiers":
        return "no identifier"
    if location in ("", "body"):
        for prefix, label in (
            ("invalid JSON", "invalid JSON"),
            ("expected a JSON object", "not a JSON object"),
            ("unexpected", "unexpected error"),
            ("event ", "no profile_id"),
        ):
            if reason.startswith(prefix):
                return label
        return "invalid body"
    return "invalid " + _INDEX.sub(".*", location)


def collected() -> CollectorRegistry:
    """Every process's metrics (multiprocess mode, added up) or else this process's."""
    path = os.environ.get(MULTIPROC_ENV)
    return multiprocess_registry(path) if path else REGISTRY


def multiprocess_registry(path: str | Path) -> CollectorRegistry:
    """The metrics the processes wrote in the multiprocess directory ``path``, added up."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return registry


def process_samples(path: Path, pid: int, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric ``name`` that the process ``pid`` of this host wrote in the multiprocess
    directory ``path``, read apart from every other process's (what one instance of a scaled service did;
    the API's figures add them all up)."""
    with tempfile.TemporaryDirectory(prefix="crmhub-metrics-") as own:
        for file in path.glob(f"*_{process_identifier(pid)}.db"):
            shutil.copy(file, own)
        return samples(multiprocess_registry(own), name)


def exposition() -> bytes:
    """The text exposition ``/metrics`` serves."""
    return bytes(generate_latest(collected()))


class _Fixed:
    """A collector of metric families computed elsewhere (e.g. from the Redis stats)."""

    def __init__(self, *families: Metric) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def restarts_exposition(restarts: Mapping[str, int]) -> bytes:
    """``crmhub_service_restarts_total`` per instance (keyed by instance name in ``restarts``): kept by the
    hub's supervisor in the Redis stats (the supervisor writes no metric files: it is not one of the
    processes whose files the API adds up)."""
    family = CounterMetricFamily(
        "crmhub_service_restarts",
        "Restarts of a service instance (or the API, Redis, the broker) by the hub's supervisor",
        labels=["service", "instance"],
    )
    for instance, n in sorted(restarts.items()):
        family.add_metric([service_of(instance), instance], n)
    registry = CollectorRegistry()
    registry.register(_Fixed(family))
    return bytes(generate_latest(registry))


def samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    """The (labels, value) samples of metric ``name`` (the sample name, e.g. ``crmhub_deadletters_total``)."""
    return [(dict(s.labels), s.value) for m in registry.collect() for s in m.samples if s.name == name]
