"""Helpers of the integration tests: publish raw inputs, poll until true, read a topic from the start."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from crmhub.hub import Hub
from crmhub.topics import EVENTS, raw_topic

ABANDONMENT_DELAY_S = 8.0  # long enough that a loaded CI machine still delivers the order in time
T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout_s: float = 30.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def publish(producer: KafkaProducer, source: str, *payloads: dict[str, Any] | bytes) -> None:
    for payload in payloads:
        key = None if isinstance(payload, bytes) else payload.get("anonymousId") or payload.get("userId")
        value = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        producer.send(raw_topic(source), key=key.encode() if key else None, value=value)
    producer.flush()


def read_topic(
    hub: Hub, topic: str, match: Callable[[dict[str, Any]], bool], want: int, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """Records of ``topic`` (JSON) matching ``match``, read from the start until ``want`` are found."""
    consumer = KafkaConsumer(bootstrap_servers=hub.settings.bootstrap_servers, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in range(hub.settings.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(found) < want:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    doc = orjson.loads(record.value)
                    if match(doc):
                        found.append(doc)
        return found
    finally:
        consumer.close()


def profile_by(api: httpx.Client, **query: str) -> dict[str, Any] | None:
    """The profile an identifier (``email=…``, ``user_id=…``, …) resolves to, or None."""
    response = api.get("/v1/profiles", params=query)
    return response.json() if response.status_code == 200 else None


def read_to_end(hub: Hub, topic: str, timeout_s: float = 15.0) -> list[ConsumerRecord]:
    """Every record of ``topic``, from the start up to the end offsets it has when called."""
    consumer = KafkaConsumer(bootstrap_servers=hub.settings.bootstrap_servers, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in range(hub.settings.partitions)]
    try:
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        found: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            assert time.monotonic() < deadline, f"could not read {topic} to its end offsets {ends}"
            for records in consumer.poll(timeout_ms=200).values():
                found.extend(records)
        return found
    finally:
        consumer.close()


def forwarded(hub: Hub, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The events on crm.events.v1 (now) that ``match``."""
    return [ev for record in read_to_end(hub, EVENTS) for ev in orjson.loads(record.value) if match(ev)]


def wait_forwarded(hub: Hub, event_ids: set[str], what: str) -> dict[str, dict[str, Any]]:
    """Wait until every one of ``event_ids`` is on crm.events.v1; the events by id."""

    def all_there() -> dict[str, dict[str, Any]] | None:
        events = {e["event_id"]: e for e in forwarded(hub, lambda e: e["event_id"] in event_ids)}
        return events if set(events) == event_ids else None

    return wait_for(all_there, what=what)


def segment_track(event: str, props: dict[str, Any], anon: str, user: str | None = None) -> dict[str, Any]:
    """A Segment track call as an SDK sends it (raw topic or collector)."""
    msg: dict[str, Any] = {
        "type": "track",
        "event": event,
        "messageId": uid("m-"),
        "anonymousId": anon,
        "timestamp": now_iso(),
        "properties": props,
    }
    if user:
        msg["userId"] = user
    return msg


def complaint_mention(email: str, message_id: str | None = None) -> dict[str, Any]:
    """A social mention flagged as a complaint, as the social listening tool publishes it."""
    return {
        "event_id": uid("s-"),
        "source": "social",
        "type": "social.mention",
        "occurred_at": now_iso(),
        "email": email,
        "properties": {
            "message_id": message_id or uid("mention-"),
            "platform": "twitter",
            "handle": "@angry",
            "text": "My order never arrived!",
            "sentiment": -0.8,
            "complaint": True,
        },
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def uid(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:12]


def identity_rebuild(hub: Hub) -> str:
    """Run ``crmhub identity rebuild`` against the hub, as an operator would; its output."""
    args = ["identity", "rebuild", "--data-dir", str(hub.settings.data_dir)]
    args += ["--redis-port", str(hub.settings.redis_port), "--kafka-port", str(hub.settings.kafka_port)]
    result = subprocess.run([sys.executable, "-m", "crmhub.cli", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout
