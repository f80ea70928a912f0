"""``crmhub deadletters list`` and ``replay``: see what was rejected and why, and re-ingest it after a fix."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
from kafka import TopicPartition
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from crmhub.core import kafka as kafka_io
from crmhub.core.audit import CLI, Access, AuditLog
from crmhub.core.setting_values import SOURCES
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from crmhub.core.topics import DEADLETTER
from crmhub.publish import RawPublisher

IDLE_S = 1.5  # the topic is read to its end: stop after this long without a new record


def read_deadletters(settings: Settings, reason: str | None = None, source: str | None = None) -> list[dict[str, Any]]:
    """Every dead letter on the topic, oldest first, optionally those whose reason contains ``reason``."""
    kafka_io.wait_until_reachable(settings, timeout_s=10)
    consumer = kafka_io.consumer(settings, None)
    partitions = consumer.partitions_for_topic(DEADLETTER) or {0}
    parts = [TopicPartition(DEADLETTER, p) for p in sorted(partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    letters: list[dict[str, Any]] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < IDLE_S:
            for records in consumer.poll(timeout_ms=200).values():
                last = time.monotonic()
                letters.extend(orjson.loads(r.value) for r in records)
    finally:
        consumer.close()
    letters.sort(key=lambda d: d.get("received_at", ""))
    return [
        d
        for d in letters
        if (reason is None or reason.lower() in d.get("reason", "").lower())
        and (source is None or raw_source(d) == source)
    ]


def raw_source(letter: dict[str, Any]) -> str | None:
    """The raw topic a dead letter's input can be replayed to (HTTP requests came to the web collector);
    None for letters of later stages, whose input was not a raw input."""
    source = letter.get("source")
    if source == "http":
        return "web"
    return source if source in SOURCES else None


def original_bytes(letter: dict[str, Any]) -> bytes:
    original = str(letter.get("original", ""))
    return base64.b64decode(original) if letter.get("original_encoding") == "base64" else original.encode()


def replay_records(letter: dict[str, Any]) -> list[bytes]:
    """The raw records that re-ingest a letter's input: a refused HTTP batch is split into its messages,
    as the collector would have; anything else goes back as it was."""
    raw = original_bytes(letter)
    if letter.get("source") == "http":
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return [raw]
        for field in ("batch", "events"):
            if isinstance(body, dict) and isinstance(body.get(field), list):
                return [orjson.dumps(m) for m in body[field]]
    return [raw]


def print_list(letters: list[dict[str, Any]], limit: int) -> None:
    table = Table(title=f"{len(letters)} dead letters" + (f", the latest {limit}" if len(letters) > limit else ""))
    for column in ("received", "source", "from", "location", "reason"):
        table.add_column(column, overflow="fold")
    for d in letters[-limit:]:
        where = (
            f"{d['topic']}[{d['partition']}]@{d['offset']}"
            if d.get("topic") is not None
            else f"request {d.get('request_id')}"
        )
        table.add_row(
            d.get("received_at", "")[:19], d.get("source", ""), where, d.get("location", ""), d.get("reason", "")
        )
    Console().print(table)


def replay(settings: Settings, letters: list[dict[str, Any]]) -> tuple[int, int]:
    """Publish each letter's original input to its raw topic again; return (replayed, skipped)."""
    publisher = RawPublisher(settings)
    replayed = skipped = 0
    with Progress() as progress:
        task = progress.add_task("replaying", total=len(letters))
        for letter in letters:
            source = raw_source(letter)
            if source is None:
                skipped += 1
            else:
                for record in replay_records(letter):
                    publisher.send(source, None, record)
                replayed += 1
            progress.advance(task)
    publisher.close()
    access = Access(CLI, "deadletters.replay", detail=f"{replayed} replayed, {skipped} skipped")
    AuditLog(make_engine(settings.sql_url)).record(access)
    return replayed, skipped
