"""Publishing raw inputs to the hub: ``crmhub publish FILE.jsonl`` and the demo traffic."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from crmhub.core import kafka as kafka_io
from crmhub.core.errors import ConfigError, ServerUnavailable
from crmhub.core.setting_values import SOURCES
from crmhub.core.settings import Settings
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
    """Produces to the raw topics: with external Kafka (acks) the broker is the durable step."""

    def __init__(self, settings: Settings) -> None:
        kafka_io.wait_until_reachable(settings, timeout_s=10)
        self.producer = kafka_io.producer(settings)

    def send(self, source: str, key: str | None, value: bytes) -> None:
        self.producer.send(raw_topic(source), key=key.encode() if key else None, value=value)

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


class ApiPublisher:
    """Posts the lines to the running hub's ``/v1/raw/{source}``: with the embedded broker (memory only)
    the API's intake journal is the durable step, so "published" means durable in both modes."""

    CHUNK = 1000  # lines a request

    def __init__(self, settings: Settings, patience_s: float = 60.0) -> None:
        self.patience_s = patience_s  # how long an API that does not answer is tried again
        self.url = f"http://127.0.0.1:{settings.api_port}"
        token = settings.api_token.get_secret_value()
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.pending: dict[str, list[bytes]] = {}

    def send(self, source: str, key: str | None, value: bytes) -> None:
        lines = self.pending.setdefault(source, [])
        lines.append(value)
        if len(lines) >= self.CHUNK:
            self._post(source, lines)
            lines.clear()

    def _post(self, source: str, lines: list[bytes]) -> None:
        """Post until the hub takes the lines: a 503 asks to come back after ``Retry-After`` seconds, and an
        API that does not answer is tried again for ``patience_s`` (the hub restarts it, or rolls its broker
        over: docs/broker-memory.md)."""
        deadline = time.monotonic() + self.patience_s
        while True:
            try:
                response = self.client.post(f"/v1/raw/{source}", content=b"\n".join(lines))
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(
                        f"no crmhub API answers at {self.url} (is crmhub up running?): {exc}"
                    ) from exc
                time.sleep(1)
                continue
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        if response.status_code == 401:
            raise ConfigError(f"the API at {self.url} refused the token (--api-token / CRMHUB_API_TOKEN)")
        response.raise_for_status()

    def flush(self) -> None:
        for source, lines in self.pending.items():
            if lines:
                self._post(source, lines)
                lines.clear()

    def close(self) -> None:
        self.flush()
        self.client.close()


def publisher_for(settings: Settings) -> RawPublisher | ApiPublisher:
    """Through the API's journal when the hub runs the embedded broker, else straight to the broker."""
    return ApiPublisher(settings) if settings.embedded_kafka else RawPublisher(settings)


Prepare = Callable[[Any, bytes], tuple[str | None, bytes]]  # (parsed line, line) -> (key, what to send)


def publish_file(settings: Settings, path: Path, source: str | None, prepare: Prepare | None = None) -> int:
    """Send every non-empty line of a JSON-lines file (made into what to send by ``prepare``, if given);
    lines that are not JSON are sent as they are, so ingest turns them into dead letters with the reason
    (nothing is dropped here)."""
    total = sum(1 for line in path.open("rb") if line.strip())
    if total == 0:
        raise ConfigError(f"{path} has no lines to publish")
    publisher = publisher_for(settings)
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
            if prepare is not None:
                key, raw = prepare(obj, raw)
            publisher.send(source_of(obj, source), str(key) if key else None, raw)
            sent += 1
            progress.advance(task)
        publisher.close()
    print(f"published {sent} events from {path}")
    return sent
