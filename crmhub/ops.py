"""What ops people watch, as one JSON snapshot: the dashboard's stream, ``GET /v1/ops`` and ``crmhub status``.

Flow totals come from the Redis counters every service adds to (:mod:`crmhub.core.stats`), lag, dead letters by
reason and memory from the metrics every service process writes (:mod:`crmhub.core.metrics`), segment sizes,
recent alerts with their delivery state per sink and recent dead letters from Redis. Rates are the
difference of two snapshots (:func:`rates`): pure, so the stream, the CLI and the tests share them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka import KafkaConsumer
from sqlalchemy import text

from crmhub.core import kafka as kafka_io
from crmhub.core.metrics import collected, samples
from crmhub.core.setting_values import SOURCES
from crmhub.core.settings import Settings
from crmhub.core.stats import RECENT_ALERTS, RECENT_DEADLETTERS, read_counts, restarts
from crmhub.core.tokens import Principal
from crmhub.core.web import Resources
from services.notifier.alertlog import STATE_PREFIX, STATUS_FIELD
from services.segmenter.http import list_all

# what each service has consumed, from the Redis counters (cluster-wide, survive a process restart)
SERVICE_COUNTERS = {
    "ingest": "ingest.in.",  # prefix: the sum over sources (and the HTTP collector)
    "profile": "profile.events",
    "segmenter": "segmenter.evaluated",
    "notifier": "notifier.profiles",
}
RECENT = 20
PROBE_TIMEOUT_MS = 3000


def flows(counts: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Totals so far: events in per source, and what each service has consumed."""
    sources = {s: counts.get(f"ingest.in.{s}", 0) for s in SOURCES}
    services = {
        name: sum(v for k, v in counts.items() if k.startswith(key)) if key.endswith(".") else counts.get(key, 0)
        for name, key in SERVICE_COUNTERS.items()
    }
    return {"sources": sources, "services": services}


def rates(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Events/s per source and per service between two snapshots (zero when no time passed)."""
    seconds = after["t"] - before["t"]
    return {
        group: {
            name: (total - before["flows"][group].get(name, 0)) / seconds if seconds > 0 else 0.0
            for name, total in totals.items()
        }
        for group, totals in after["flows"].items()
    }


def snapshot(res: Resources, t: float) -> dict[str, Any]:
    """Every figure of the dashboard at monotonic time ``t`` (one Redis pipeline, one metrics read)."""
    pipe = res.redis.pipeline(transaction=False)
    pipe.lrange(RECENT_DEADLETTERS, 0, RECENT - 1)
    pipe.lrange(RECENT_ALERTS, 0, RECENT - 1)
    dead_raw, alerts_raw = pipe.execute()
    counts = read_counts(res.redis)
    registry = collected()
    return {
        "t": t,
        "at": datetime.now(UTC).isoformat(),
        "counts": counts,
        "flows": flows(counts),
        "lag": sorted(
            (
                {"service": k["service"], "topic": k["topic"], "partition": int(k["partition"]), "lag": int(v)}
                for k, v in samples(registry, "crmhub_consumer_lag")
            ),
            key=lambda row: (row["service"], row["topic"], row["partition"]),
        ),
        "deadletter_reasons": by_label(samples(registry, "crmhub_deadletters_total"), "reason"),
        "memory": by_label(samples(registry, "crmhub_process_resident_memory_bytes"), "instance"),
        "restarts": restarts(counts),
        "deadletters": [orjson.loads(d) for d in dead_raw],
        "alerts": with_delivery(res.redis, [orjson.loads(a) for a in alerts_raw]),
        "segments": [{"name": s["name"], "size": s["size"]} for s in list_all(res)],
    }


PERSONAL_ALERT_FIELDS = ("profile_id", "summary", "details")  # what only profiles:read sees of an alert
PERSONAL_LETTER_FIELDS = ("original", "original_encoding")  # a dead letter's input as it came


def redact_letters(letters: list[dict[str, Any]], who: Principal) -> list[dict[str, Any]]:
    """Dead letters as ``who`` may see them: the original input only with ``profiles:read``."""
    if who.allows("profiles:read"):
        return letters
    return [{k: v for k, v in d.items() if k not in PERSONAL_LETTER_FIELDS} for d in letters]


def redact(snap: dict[str, Any], who: Principal) -> dict[str, Any]:
    """A snapshot as ``who`` may see it: without ``profiles:read``, alerts keep their kind, time and delivery
    but not whom they are about or what they say, and dead letters their reason but not their input."""
    if who.allows("profiles:read"):
        return snap
    alerts = [{k: v for k, v in a.items() if k not in PERSONAL_ALERT_FIELDS} for a in snap["alerts"]]
    return {**snap, "alerts": alerts, "deadletters": redact_letters(snap["deadletters"], who)}


def lag_by_topic(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[int, int]]:
    """The snapshot's lag rows as (service, topic) -> {partition: lag}, in the rows' order."""
    grouped: dict[tuple[str, str], dict[int, int]] = {}
    for row in rows:
        grouped.setdefault((row["service"], row["topic"]), {})[row["partition"]] = row["lag"]
    return grouped


def by_label(rows: list[tuple[dict[str, str], float]], label: str) -> dict[str, int]:
    """Sample values added up per value of ``label``, largest first."""
    totals: dict[str, int] = {}
    for labels, value in rows:
        totals[labels[label]] = totals.get(labels[label], 0) + int(value)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def with_delivery(redis: Any, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts, each with ``delivery``: its final state per sink so far (no entry: still being tried)."""
    pipe = redis.pipeline(transaction=False)
    for alert in alerts:
        pipe.hgetall(STATE_PREFIX + alert["alert_id"])
    states = pipe.execute() if alerts else []
    for alert, state in zip(alerts, states, strict=True):
        fields = {k.decode(): v.decode() for k, v in state.items()}
        sinks = [s for s in fields.get("sinks", "").split(",") if s]
        alert["delivery"] = {s: fields.get(STATUS_FIELD + s, "pending") for s in sinks}
    return alerts


class BrokerProbe:
    """Asks the broker for its metadata, a real round trip (a TCP connect alone proves little). One
    kafka-python client, made at start (making one while the broker is away takes 30 s to give up; a
    made one answers at once that the connection is refused), behind a lock: its clients are not
    thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.lock = threading.Lock()
        self.consumer: KafkaConsumer = kafka_io.consumer(settings, None, request_timeout_ms=PROBE_TIMEOUT_MS)

    def __call__(self) -> None:
        with self.lock:
            self.consumer.topics()

    def close(self) -> None:
        with self.lock:
            self.consumer.close()


def readiness(res: Resources, broker: Callable[[], object]) -> dict[str, str]:
    """``ok`` or what went wrong, for the broker, Redis and the SQL store."""

    def sql() -> None:
        with res.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    checks: dict[str, Callable[[], object]] = {"broker": broker, "redis": res.redis.ping, "sql": sql}
    status: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            status[name] = "ok"
        except Exception as exc:  # whatever the client raises, the answer is "not ready, because..."
            status[name] = f"{type(exc).__name__}: {exc}"[:300]
    return status
