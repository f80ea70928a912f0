"""Publishing raw inputs to the hub: ``crmhub publish FILE.jsonl`` and the demo traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from crmhub.core import kafka as kafka_io
from crmhub.core.errors import ConfigError
from crmhub.core.settings import SOURCES, Settings
from crmhub.core.topics import raw_topic
from services.ingest.normalize import is_segment_message


def source_of(obj: Any, default: str | None) -> str:
    """Which raw topic a line goes to: --source, else the line's own 'source', Segment messages to web."""
    if default:
        return default
    if isinstance(obj, dict):
        if is_segment_message(obj):
            return "web"
        if obj.get("source") in SOURCES:
            return str(obj["source"])
    return "web"


class RawPublisher:
    def __init__(self, settings: Settings) -> None:
        kafka_io.wait_until_reachable(settings, timeout_s=10)
        self.producer = kafka_io.producer(settings)

    def send(self, source: str, key: str | None, value: bytes) -> None:
        self.producer.send(raw_topic(source), key=key.encode() if key else None, value=value)

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


def publish_file(settings: Settings, path: Path, source: str | None) -> int:
    """Send every non-empty line of a JSON-lines file; lines that are not JSON are sent as they are,
    so ingest turns them into dead letters with the reason (nothing is dropped here)."""
    total = sum(1 for line in path.open("rb") if line.strip())
    if total == 0:
        raise ConfigError(f"{path} has no lines to publish")
    publisher = RawPublisher(settings)
    sent = 0
    columns = (TextColumn("publishing {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns) as progress, path.open("rb") as lines:
        task = progress.add_task(path.name, total=total)
        for line in lines:
            raw = line.strip()
            if not raw:
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = None
            key = None
            if isinstance(obj, dict):
                key = obj.get("userId") or obj.get("anonymousId") or obj.get("customer_id") or obj.get("email")
            publisher.send(source_of(obj, source), str(key) if key else None, raw)
            sent += 1
            progress.advance(task)
        publisher.close()
    print(f"published {sent} events from {path}")
    return sent
