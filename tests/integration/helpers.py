"""Helpers of the integration tests: publish raw inputs, poll until true, read a topic from the start, an
HTTP receiver for webhooks, restart the notifier."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from crmhub.core.conditions.fields import profile_view
from crmhub.core.conditions.language import evaluate
from crmhub.core.net import free_port
from crmhub.core.pseudonyms import identity_key, pseudonym
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from crmhub.core.topics import EVENTS, raw_topic
from crmhub.embedded import stop_process
from crmhub.hub import SERVICES, Child, Hub, settings_env
from services.profile.store import ProfileStore
from services.segmenter.definitions import current
from services.segmenter.store import SegmentStore

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
    """Every record of ``topic``, from the start up to (at least) its end when called: the high watermark
    of each partition's first fetch. Not the end offsets: Tansu reports the base offset of a partition's
    last batch + 1 (../shared/BROKER.md), which leaves out the rest of that batch."""
    consumer = KafkaConsumer(bootstrap_servers=hub.settings.bootstrap_servers, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in range(hub.settings.partitions)]
    try:
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends: dict[TopicPartition, int] = {}
        found: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while len(ends) < len(parts) or any(consumer.position(tp) < ends[tp] for tp in parts):
            assert time.monotonic() < deadline, f"could not read {topic} to its end {ends}"
            for records in consumer.poll(timeout_ms=200).values():
                found.extend(records)
            for tp in parts:
                if tp not in ends and (highwater := consumer.highwater(tp)) is not None:
                    ends[tp] = highwater
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


def due_day() -> date:
    """The day whose 09:00 (UTC) date occurrence is due now and not yet stale."""
    now = datetime.now(UTC)
    return now.date() if now.hour >= 9 else now.date() - timedelta(days=1)


def alerts(api: httpx.Client, profile_id: str, kind: str) -> list[dict[str, Any]]:
    return list(api.get("/v1/alerts", params={"customer": profile_id, "kind": kind, "limit": 50}).json())


def segments(api: httpx.Client, profile_id: str) -> set[str]:
    return set(api.get(f"/v1/profiles/{profile_id}/segments").json()["segments"])


def identity_rebuild(hub: Hub) -> str:
    """Run ``crmhub identity rebuild`` against the hub, as an operator would; its output."""
    args = ["identity", "rebuild", "--data-dir", str(hub.settings.data_dir)]
    args += ["--redis-port", str(hub.settings.redis_port), "--kafka-port", str(hub.settings.kafka_port)]
    result = subprocess.run([sys.executable, "-m", "crmhub.cli", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def alert_id(self) -> str:
        return self.headers.get("idempotency-key") or orjson.loads(self.body)["blocks"][2]["elements"][0]["text"]


@dataclass
class Receiver:
    """A tiny threaded HTTP server that records every request and answers per path."""

    port: int = field(default_factory=free_port)
    requests: list[Received] = field(default_factory=list)
    tries: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, headers: dict[str, str]) -> int:
        with self.lock:
            key = (path, headers.get("idempotency-key", ""))
            self.tries[key] += 1
            if path == "/flaky":
                return 500 if self.tries[key] <= 2 else 204
            return 500 if path == "/down" else 200

    def got(self, path: str, alert_id: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path and (alert_id is None or alert_id in r.alert_id)]

    @contextlib.contextmanager
    def running(self) -> Iterator[Receiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver.answer(self.path, headers)
                with receiver.lock:
                    receiver.requests.append(Received(self.path, headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def restart_notifier(hub: Hub, kill: bool = False) -> None:
    """Stop the notifier (SIGTERM and wait, or ``kill``: SIGKILL, no goodbye) and start a fresh one."""
    (old,) = [c for c in hub.children if c.name == "notifier" and c.proc.poll() is None]
    if kill:
        os.killpg(old.proc.pid, signal.SIGKILL)
        old.proc.wait()
    else:
        stop_process(old.proc, timeout_s=15)
    hub.children.remove(old)
    hub.spawn("notifier", SERVICES["notifier"])


def child(hub: Hub, name: str) -> Child:
    """The hub's (one) child process called ``name``."""
    (found,) = [c for c in hub.children if c.name == name]
    return found


def sigkill(c: Child) -> int:
    """SIGKILL a child's process group (no goodbye); its pid."""
    pid = c.proc.pid
    os.killpg(pid, signal.SIGKILL)
    return pid


def restarts(api: httpx.Client) -> dict[str, float]:
    """``crmhub_service_restarts_total`` per instance (``profile``, or ``profile-2`` of a scaled service),
    from the API's ``/metrics``."""
    return {
        sample.labels["instance"]: sample.value
        for family in text_string_to_metric_families(api.get("/metrics").text)
        for sample in family.samples
        if sample.name == "crmhub_service_restarts_total"
    }


def fresh_membership(hub: Hub) -> dict[str, set[str]]:
    """Every stored profile's segments, evaluated now from scratch (profiles merged away are in none)."""
    engine = make_engine(hub.settings.sql_url)
    defs, _ = current(hub.settings.segments_file, SegmentStore(engine))
    now = datetime.now(UTC)
    return {
        p.profile_id: set() if p.merged_into else evaluate(defs, profile_view(p.model_dump(mode="json")), now)
        for p in ProfileStore(engine).iter_profiles()
    }


def id_key(hub: Hub, kind: str, value: str) -> str:
    """The Redis key of an identifier in ingest's identity index: its keyed hash, never the value."""
    return f"crmhub:id:{kind}:{pseudonym(identity_key(hub.settings), kind, value)}"


def alerting_settings(data: Path, routes: dict[str, Any], **extra: Any) -> Settings:
    """Settings of a test hub in ``data`` whose alerts follow ``routes`` (written to routes.yaml there),
    with fast delivery retries and ``extra`` settings."""
    (data / "routes.yaml").write_text(yaml.safe_dump(routes))
    fast = {"delivery_backoff_s": 0.05, "delivery_backoff_max_s": 0.2}
    return Settings(
        data_dir=data,
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        api_token="test-token",
        routes_file=data / "routes.yaml",
        **{**fast, **extra},
    )


class PatientTransport(httpx.HTTPTransport):
    """Tries a request again (as the SDKs do) when the API went away under it: a refused connection, or
    a kept-alive one the API closed as it stopped (the hub restarts a killed API, and restarts it once the
    broker has rolled over). Every test request may be sent twice: the API's writes are idempotent."""

    ATTEMPTS = 8

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self.ATTEMPTS):
            try:
                return super().handle_request(request)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                if attempt == self.ATTEMPTS - 1:
                    raise
                time.sleep(min(0.5 * 2**attempt, 8.0))
        raise AssertionError("unreachable")


def api_client(hub_settings: Settings, timeout_s: float = 30.0) -> httpx.Client:
    """An HTTP client of the hub's API with the tests' token, patient for about a minute while the API is
    away (:class:`PatientTransport`)."""
    return httpx.Client(
        base_url=f"http://127.0.0.1:{hub_settings.api_port}",
        headers={"Authorization": "Bearer test-token"},
        timeout=timeout_s,
        transport=PatientTransport(),
    )


def wait_journeys_in_force(hub_settings: Settings, *signatures: str) -> None:
    """Until the notifier's log says it runs the journeys (``"<id> v<version> <status>"`` each): it reads
    the definitions every tick, and an input it handles before that is not a trigger of a new journey."""
    log = hub_settings.data_dir / "logs" / "notifier.log"

    def running() -> bool:
        said = [line for line in log.read_text().splitlines() if "journeys in force:" in line]
        return bool(said) and all(sig in said[-1] for sig in signatures)

    wait_for(running, 30, what=f"the journeys in force: {', '.join(signatures)}")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class HubProcess:
    """``crmhub up`` in a process of its own, as a user runs it."""

    def __init__(self, data_dir: Path, *options: str) -> None:
        self.data_dir, self.options = data_dir, options
        self.ports = {"kafka-port": free_port(), "redis-port": free_port(), "api-port": free_port()}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api-port']}"

    def start(self) -> None:
        args = [sys.executable, "-m", "crmhub.cli", "up", "--data-dir", str(self.data_dir)]
        args += [f"--{k}={v}" for k, v in self.ports.items()]
        args += ["--write-keys=test-web-key:web", "--api-token=test-token", "--batch-size=100", *self.options]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self._healthy(), 90, "crmhub up to answer")

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-up.log"

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"crmhub up exited ({self.proc.returncode}); the end of its output:\n{tail}")
        try:
            return httpx.get(self.api + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill_everything(self) -> None:
        """SIGKILL the hub and every process it started at once: what a power cut does to them."""
        assert self.proc is not None
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill_everything()


def crmhub(hub: Hub, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line on ``hub``'s settings (as a user's environment would give them)."""
    env = {**settings_env(hub.settings), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "crmhub.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )
