"""What the benchmarks read off a running hub: its counters in Redis, and each process's CPU time and RSS.

The processes are the hub's own children (each service under its name, the API), the embedded broker
(``broker``, Tansu) and the embedded Redis server (``redis``): the pids the :class:`crmhub.hub.Hub` holds.
CPU time is utime + stime + cutime + cstime from ``/proc/<pid>/stat`` (Linux): what the process and the
children it has waited for spent, so a delta over a phase is what that process cost, whatever else shares
the cores. The children count because Redis forks one to rewrite its append-only file: at 100,000 profiles
and 1,000 events/s that child worked a core for ~10 s a minute, more than the server itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import redis

from crmhub.core.metrics import multiprocess_registry, rss_mb, samples
from crmhub.core.stats import read_counts
from crmhub.hub import Hub

SERVICE_NAMES = ("ingest", "profile", "segmenter", "notifier")
# ingest's counters: each input is forwarded, a catalogue update, a duplicate, a dead letter or suppressed
INGESTED = ("ingest.out", "ingest.catalog", "ingest.duplicates", "ingest.deadletters", "ingest.suppressed")


def wait_counter(r: redis.Redis, name: str, target: int, timeout_s: float) -> float | None:
    """Monotonic time at which counter ``name`` reached ``target``; None on timeout."""
    return wait_for(r, {name: lambda counts: counts.get(name, 0) >= target}, timeout_s)[name]


def wait_for(
    r: redis.Redis, conditions: Mapping[str, Callable[[dict[str, int]], bool]], timeout_s: float
) -> dict[str, float | None]:
    """Monotonic time at which each condition on the counters first held (None: not within the timeout)."""
    reached: dict[str, float | None] = dict.fromkeys(conditions)
    deadline = time.monotonic() + timeout_s
    while None in reached.values():
        counts, now = read_counts(r), time.monotonic()
        for name, holds in conditions.items():
            if reached[name] is None and holds(counts):
                reached[name] = now
        if now >= deadline:
            break
        time.sleep(0.02)
    return reached


def ingested(counts: Mapping[str, int]) -> int:
    """Inputs ingest has handled so far, whatever became of each."""
    return sum(counts.get(name, 0) for name in INGESTED)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process, and the children it has waited for, have used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def hub_pids(hub: Hub, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """The pid of every running process of the hub: its children by name, ``broker`` and ``redis``."""
    pids = {c.name: c.proc.pid for c in hub.children if c.proc.poll() is None and c.name not in skip}
    for name, server in (("broker", hub.broker), ("redis", hub.redis_server)):
        if server is not None and server.proc is not None and server.proc.poll() is None:
            pids[name] = server.proc.pid
    return pids


def cpu_snapshot(pids: Mapping[str, int]) -> dict[str, float]:
    return {name: cpu_s(pid) for name, pid in pids.items()}


def cpu_since(pids: Mapping[str, int], before: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds each process used since ``before`` (a :func:`cpu_snapshot` of the same pids)."""
    return {name: cpu_s(pid) - before[name] for name, pid in pids.items() if name in before}


def process_rss(hub: Hub, skip: tuple[str, ...] = ()) -> dict[str, float]:
    """RSS in MB of every process of the hub (see :func:`hub_pids`), by name."""
    return {name: mb for name, pid in sorted(hub_pids(hub, skip).items()) if (mb := rss_mb(pid)) is not None}


def batches(hub: Hub) -> dict[str, int]:
    """How many batches each service has handled so far (the count of its ``crmhub_batch_seconds``)."""
    found: dict[str, int] = {}
    for labels, value in samples(multiprocess_registry(hub.metrics_dir), "crmhub_batch_seconds_count"):
        found[labels["service"]] = found.get(labels["service"], 0) + int(value)
    return found
