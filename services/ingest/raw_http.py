"""``POST /v1/raw/{source}``: JSON lines for a raw topic, made durable like the collector's input.

``crmhub publish`` uses it when the hub runs the embedded broker: a 2xx then means the lines are in the
intake journal, as for the collector (with external Kafka, publish produces to the broker itself). Lines
go on unchanged, whatever they hold: ingest validates them and turns what is not an event into a dead
letter with the reason, so a file with a bad line loses nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from crmhub.core.intake import IntakeUnavailable
from crmhub.core.journal import Entry
from crmhub.core.setting_values import Source
from crmhub.core.topics import raw_topic
from crmhub.core.web import REQUEST_ID_HEADER, EventsWrite, Res
from services.ingest.collector import CollectorError, accept, error_response, read_body, unavailable

MAX_BODY_BYTES = 5 * 2**20
router = APIRouter(tags=["collector"])
KEY_FIELDS = ("userId", "anonymousId", "customer_id", "anonymous_id", "email")


def key_of(line: bytes) -> bytes | None:
    """The line's customer or browser id (one customer's lines stay on one partition, in order)."""
    try:
        obj: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    key = next((obj[k] for k in KEY_FIELDS if obj.get(k)), None) if isinstance(obj, dict) else None
    return str(key).encode() if key else None


def line_entries(source: str, body: bytes, request_id: str) -> list[Entry]:
    headers = (("received_at", datetime.now(UTC).isoformat().encode()), ("request_id", request_id.encode()))
    lines = (line.strip() for line in body.split(b"\n"))
    return [Entry(raw_topic(source), key_of(line), line, headers) for line in lines if line]


@router.post(
    "/v1/raw/{source}",
    dependencies=[EventsWrite],
    summary="JSON lines for a raw topic, unchanged (what `crmhub publish` sends); durable when answered",
)
async def post_raw(source: Source, request: Request, res: Res) -> JSONResponse:
    request_id = uuid.uuid4().hex
    try:
        body = await read_body(request, res)
    except CollectorError as exc:
        return error_response(exc, request_id)
    if len(body) > MAX_BODY_BYTES:
        return JSONResponse(
            {"code": "payload_too_large", "message": f"at most {MAX_BODY_BYTES // 2**20} MB a request"},
            status_code=413,
            headers={REQUEST_ID_HEADER: request_id},
        )
    entries = line_entries(source, body, request_id)
    try:
        await accept(res, entries)
    except IntakeUnavailable as exc:
        return unavailable(exc, request_id)
    return JSONResponse({"accepted": len(entries)}, headers={REQUEST_ID_HEADER: request_id})
