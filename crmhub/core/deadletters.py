"""The one builder of ``crm.deadletter.v1`` records (ingest, the collector, the profile store and the
runtime's poison handling use it)."""

from __future__ import annotations

import base64
from datetime import datetime

from schemas.outputs import DeadLetter


def build(
    *,
    reason: str,
    location: str,
    source: str,
    original: bytes,
    received_at: datetime,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    request_id: str | None = None,
) -> bytes:
    """The dead letter's JSON: the original as UTF-8 text, or base64 when it is not valid UTF-8."""
    try:
        text, encoding = original.decode(), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(original).decode(), "base64"
    letter = DeadLetter(
        reason=reason,
        location=location,
        source=source,
        topic=topic,
        partition=partition,
        offset=offset,
        request_id=request_id,
        received_at=received_at,
        original=text,
        original_encoding=encoding,
    )
    return letter.model_dump_json().encode()


def source_of_topic(topic: str) -> str:
    """The source a record of ``topic`` came from: ``web`` for ``crm.raw.web.v1``, else ``crm``."""
    parts = topic.split(".")
    return parts[2] if len(parts) == 4 and parts[1] == "raw" else "crm"
