"""HTTP collector speaking the public Segment tracking API as the SDKs use it.

Paths: the long ones (``/v1/track``, ``/v1/identify``, ``/v1/page``, ``/v1/screen``, ``/v1/group``,
``/v1/alias``, ``/v1/batch``), the short ones analytics.js posts to (``/v1/t``, ``/v1/i``, ``/v1/p``,
``/v1/s``, ``/v1/g``, ``/v1/a``), ``/v1/b`` (the batch of Segment's mobile libraries and analytics.js's
batching mode) and ``/beacon/v1/batch`` (RudderStack's page-unload beacon). The body is JSON whatever its
content type: browsers send ``text/plain`` so that no CORS preflight is needed, beacons always do.

Requests are authenticated by write key (HTTP Basic user name, else ``writeKey`` in the body, else the
``writeKey`` query parameter a beacon must use, having no headers), limited to Segment's documented sizes
(32 KB a message, 500 KB a batch: a ``keepalive`` fetch or a beacon, at most 64 KB, always fits), and each
message is written unchanged to the raw topic of the key's source; ingest validates it there, like any
other raw input, and corrects the device's clock from ``sentAt``.

The SDKs fetch their settings from their vendor's CDN; ``/v1/projects/{writeKey}/settings`` (Segment's
``cdnURL``) and ``/sourceConfig`` (RudderStack's ``configUrl``) answer them here instead, pointing the
SDK at this collector and at no third-party destination.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import hashlib
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from kafka.errors import KafkaError
from starlette.concurrency import run_in_threadpool

from crmhub.core import metrics
from crmhub.core.intake import IntakeUnavailable
from crmhub.core.journal import Entry
from crmhub.core.stats import RECENT_DEADLETTERS, add_counts, push_recent
from crmhub.core.topics import DEADLETTER, raw_topic
from crmhub.core.web import REQUEST_ID_HEADER, Res, Resources  # the id is also on the raw records, dead letters
from schemas.outputs import DeadLetter

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
SERVICE = "collector"  # in the API process: its metrics
REASON_LABELS = {"invalid_json": "invalid JSON"}  # the dead-letter label of an error code, where not its words
RATE_PREFIX = "crmhub:rate:"  # + the write key's hash and the second: requests counted
NOT_KEPT = frozenset({401, 408, 429})  # refusals that make no dead letter
PRODUCE_TIMEOUT_S = 5.0  # without a journal: how long a request waits for the broker before its 503
router = APIRouter(tags=["collector"])


class CollectorError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(exc: CollectorError, request_id: str) -> JSONResponse:
    headers = {REQUEST_ID_HEADER: request_id}
    if exc.status == 429:
        headers["Retry-After"] = "1"  # the next second's budget
    return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status, headers=headers)


def write_key_of(request: Request, body: dict[str, Any] | None) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user, _, _ = base64.b64decode(auth[6:].strip()).decode().partition(":")
            return user
        except (binascii.Error, UnicodeDecodeError):
            return None
    in_body = body.get("writeKey") if body else None
    return in_body if isinstance(in_body, str) else request.query_params.get("writeKey")


def decompress(raw: bytes, encoding: str) -> bytes:
    if encoding not in ("gzip", "deflate"):
        return raw
    try:
        d = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
        out = d.decompress(raw, MAX_BATCH_BYTES + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise CollectorError(400, "invalid_request", f"body is not valid {encoding}: {exc}") from exc
    if len(out) > MAX_BATCH_BYTES or d.unconsumed_tail:
        raise CollectorError(400, "payload_too_large", f"a batch may be at most {MAX_BATCH_BYTES // 1024} KB")
    return out


def parse_body(raw: bytes, encoding: str) -> dict[str, Any]:
    if len(raw) > MAX_BATCH_BYTES:
        raise CollectorError(400, "payload_too_large", f"a batch may be at most {MAX_BATCH_BYTES // 1024} KB")
    try:
        body = orjson.loads(decompress(raw, encoding))
    except orjson.JSONDecodeError as exc:
        raise CollectorError(400, "invalid_json", f"body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise CollectorError(400, "invalid_request", "body must be a JSON object")
    return body


def raw_entries(source: str, messages: list[dict[str, Any]], sent_at: Any, request_id: str) -> list[Entry]:
    """The raw records of a request's messages, with the request's headers."""
    headers = [("received_at", datetime.now(UTC).isoformat().encode()), ("request_id", request_id.encode())]
    if isinstance(sent_at, str):
        headers.append(("sent_at", sent_at.encode()))
    entries = []
    for msg in messages:
        # one browser's (or customer's) messages stay on one partition, in order; an alias goes with its
        # previousId, most often the anonymous id of that browser
        keys = ("anonymousId", "previousId", "userId", "anonymous_id", "customer_id", "email")
        key = next((msg[k] for k in keys if msg.get(k)), None)
        value = orjson.dumps(msg)
        entries.append(Entry(raw_topic(source), str(key).encode() if key else None, value, tuple(headers)))
    return entries


def produce(res: Resources, entries: list[Entry]) -> None:
    """Produce to the broker and wait for its acknowledgements (the durable step with external Kafka);
    a broker that does not acknowledge within a few seconds gets the client a 503 to retry."""
    try:
        futures = [res.producer.send(e.topic, key=e.key, value=e.value, headers=list(e.headers)) for e in entries]
        for future in futures:
            future.get(timeout=PRODUCE_TIMEOUT_S)
    except KafkaError as exc:
        raise IntakeUnavailable(f"the broker did not acknowledge the input: {exc}") from exc


async def accept(res: Resources, entries: list[Entry]) -> None:
    """Make the request's records durable before the answer: the journal on the embedded broker, else the
    broker. Raises :class:`IntakeUnavailable` when neither takes them now."""
    if res.intake is not None:
        await res.intake.append(entries)
    else:
        await run_in_threadpool(produce, res, entries)


async def dead_letter_request(res: Resources, raw: bytes, request_id: str, error: CollectorError) -> None:
    """A refused request is input too: its dead letter is made durable like any input."""
    letter = (
        DeadLetter(
            reason=error.message,
            location="body",
            source="http",
            request_id=request_id,
            received_at=datetime.now(UTC),
            original=raw[:MAX_BATCH_BYTES].decode(errors="replace"),
        )
        .model_dump_json()
        .encode()
    )
    await accept(res, [Entry(DEADLETTER, None, letter)])
    await run_in_threadpool(count_dead_letter, res, letter)
    metrics.PRODUCED.labels(SERVICE, DEADLETTER, "deadletter").inc()
    metrics.DEADLETTERS.labels(SERVICE, REASON_LABELS.get(error.code, error.code.replace("_", " "))).inc()


def count_dead_letter(res: Resources, letter: bytes) -> None:
    pipe = res.redis.pipeline(transaction=False)
    add_counts(pipe, {"ingest.in.http": 1, "ingest.deadletters": 1})  # in = forwarded + dead + duplicates
    push_recent(pipe, RECENT_DEADLETTERS, [letter])
    pipe.execute()


Extract = Callable[[dict[str, Any]], Any]


def segment_messages(call: str | None) -> Extract:
    """The messages of a Segment request: a batch's list (with the batch context merged in), or the
    body itself for a single call, typed by its endpoint."""

    def extract(body: dict[str, Any]) -> Any:
        if call is not None:
            return [{**body, "type": call}]  # the endpoint names the call, whatever the body says
        batch = body.get("batch")
        if isinstance(batch, list) and isinstance(body.get("context"), dict):
            batch = [
                {**m, "context": {**body["context"], **(m.get("context") or {})}} if isinstance(m, dict) else m
                for m in batch
            ]
        return batch

    return extract


def native_events(body: dict[str, Any]) -> Any:
    """crmhub's own envelopes: ``{"events": [...]}`` or one event."""
    return body.get("events") if "events" in body else [body]


async def read_body(request: Request, res: Resources) -> bytes:
    """The request's body; a client that sends it slower than ``body_timeout_s`` is cut off (408), so
    slow senders cannot hold the API's connections and memory."""
    timeout_s = res.settings.body_timeout_s
    try:
        return await asyncio.wait_for(request.body(), timeout_s)
    except TimeoutError as exc:
        raise CollectorError(408, "request_timeout", f"the body took over {timeout_s:g} s to arrive") from exc


def within_rate(res: Resources, write_key: str) -> bool:
    """Count the request against its write key's budget of this second (a Redis counter per key and
    second, the key itself hashed out of the counter's name)."""
    limit = res.settings.write_key_rate
    if not limit:
        return True
    name = f"{RATE_PREFIX}{hashlib.sha256(write_key.encode()).hexdigest()[:16]}:{int(time.time())}"
    pipe = res.redis.pipeline(transaction=False)
    pipe.incr(name)
    pipe.expire(name, 2)
    return int(pipe.execute()[0]) <= limit


async def authorized_source(request: Request, res: Resources, body: dict[str, Any]) -> str:
    """The source of the request's write key: 401 for an unknown key, 429 over its rate."""
    write_key = write_key_of(request, body) or ""
    source = res.settings.write_key_sources.get(write_key)
    if source is None:
        raise CollectorError(401, "unauthorized", "unknown or missing write key (HTTP Basic user name)")
    if not await run_in_threadpool(within_rate, res, write_key):
        raise CollectorError(429, "rate_limited", f"over {res.settings.write_key_rate} requests a second")
    return source


async def collect(request: Request, res: Resources, extract: Extract) -> JSONResponse:
    request_id = uuid.uuid4().hex
    raw = b""
    try:
        raw = await read_body(request, res)
        body = parse_body(raw, request.headers.get("content-encoding", "").lower())
        source = await authorized_source(request, res, body)
        messages = extract(body)
        if not isinstance(messages, list):
            raise CollectorError(400, "invalid_request", "'batch' (or 'events') must be a list of messages")
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                raise CollectorError(400, "invalid_request", f"batch[{i}] is not a JSON object")
            msg.pop("writeKey", None)
            if len(orjson.dumps(msg)) > MAX_MESSAGE_BYTES:
                raise CollectorError(400, "message_too_large", f"batch[{i}] exceeds {MAX_MESSAGE_BYTES // 1024} KB")
        await accept(res, raw_entries(source, messages, body.get("sentAt"), request_id))
        metrics.PRODUCED.labels(SERVICE, raw_topic(source), "raw").inc(len(messages))
    except CollectorError as exc:
        return await refuse(res, raw, request_id, exc)
    except IntakeUnavailable as exc:
        return unavailable(exc, request_id)
    return JSONResponse({"success": True}, headers={REQUEST_ID_HEADER: request_id})


async def refuse(res: Resources, raw: bytes, request_id: str, exc: CollectorError) -> JSONResponse:
    """The error answer; a refused request is kept as a dead letter first, but an unauthenticated, a
    rate-limited or a timed-out one (nothing to learn from, or a flood)."""
    if exc.status not in NOT_KEPT:
        try:
            await dead_letter_request(res, raw, request_id, exc)
        except IntakeUnavailable as down:  # not even the dead letter can be kept: the client must retry
            return unavailable(down, request_id)
    return error_response(exc, request_id)


def unavailable(exc: IntakeUnavailable, request_id: str) -> JSONResponse:
    """503 with Retry-After: nothing of the request was acknowledged, and Segment's and RudderStack's SDKs
    send it again."""
    headers = {REQUEST_ID_HEADER: request_id, "Retry-After": str(exc.retry_after_s)}
    return JSONResponse({"code": "unavailable", "message": str(exc)}, status_code=503, headers=headers)


def _endpoint(call: str | None) -> Callable[[Request, Resources], Awaitable[JSONResponse]]:
    async def endpoint(request: Request, res: Res) -> JSONResponse:
        return await collect(request, res, segment_messages(call))

    return endpoint


# the Segment call a single-message endpoint implies (None: a batch of calls) -> its paths, long path first
SEGMENT_ROUTES: dict[str | None, tuple[str, ...]] = {
    None: ("/v1/batch", "/v1/b", "/beacon/v1/batch"),
    "track": ("/v1/track", "/v1/t"),
    "identify": ("/v1/identify", "/v1/i"),
    "page": ("/v1/page", "/v1/p"),
    "screen": ("/v1/screen", "/v1/s"),
    "group": ("/v1/group", "/v1/g"),
    "alias": ("/v1/alias", "/v1/a"),
}
for _call, _paths in SEGMENT_ROUTES.items():
    for _path in _paths:
        router.add_api_route(
            _path,
            _endpoint(_call),
            methods=["POST"],
            name=f"{_call or 'batch'} {_path}",
            summary=f"Segment {_call or 'batch'} call" + ("" if _call else " (up to 500 KB)"),
            description="" if _path == _paths[0] else f"The same as `{_paths[0]}`, as the SDKs name it.",
        )


@router.post("/v1/events", summary='crmhub\'s own event envelopes: one event, or {"events": [...]}')
async def native(request: Request, res: Res) -> JSONResponse:
    """Stores, payment, social and support systems post crmhub envelopes (see `schemas/json/`); the
    write key's source decides the raw topic, and ingest checks each event's `source` against it."""
    return await collect(request, res, native_events)


@router.get("/v1/projects/{write_key}/settings", summary="Settings analytics.js fetches (its cdnURL)")
def segment_settings(write_key: str, request: Request, res: Res) -> dict[str, Any]:
    """What analytics.js loads before it sends anything, normally from Segment's CDN: this collector as
    its only destination, and none of Segment's own metrics or plugins."""
    _known_key(res, write_key)
    host = f"{request.url.netloc}{request.url.path.partition('/v1/projects/')[0]}/v1"
    return {
        "integrations": {"Segment.io": {"apiKey": write_key, "apiHost": host, "protocol": request.url.scheme}},
        "metrics": {"sampleRate": 0},
        "remotePlugins": [],
        "enabledMiddleware": {},
        "middlewareSettings": {},
    }


@router.get("/sourceConfig", summary="Source configuration RudderStack's JavaScript SDK fetches (its configUrl)")
@router.get("/sourceConfig/", include_in_schema=False)
def rudderstack_source_config(request: Request, res: Res) -> dict[str, Any]:
    """What RudderStack's SDK loads before it sends anything: an enabled source without device-mode
    destinations (the SDK sends to the data plane URL it was given, this collector)."""
    write_key = write_key_of(request, None) or ""  # the query's writeKey, or Basic as the mobile SDKs send it
    source = _known_key(res, write_key)
    return {
        "source": {
            "id": f"crmhub-{source}",
            "name": f"crmhub {source}",
            "workspaceId": "crmhub",
            "writeKey": write_key,
            "enabled": True,
            "config": {},
            "destinations": [],
        }
    }


def _known_key(res: Resources, write_key: str) -> str:
    source = res.settings.write_key_sources.get(write_key)
    if source is None:
        raise HTTPException(404, "unknown write key")
    return source


COLLECTOR_PATHS = frozenset(p for paths in SEGMENT_ROUTES.values() for p in paths) | {"/v1/events", "/sourceConfig"}


def is_collector_path(path: str) -> bool:
    """The paths browsers may reach from another origin (see services.ingest.cors)."""
    return path.rstrip("/") in COLLECTOR_PATHS or (path.startswith("/v1/projects/") and path.endswith("/settings"))
