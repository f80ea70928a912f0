"""A segment's audience sync setting: ``sync: {webhook: ads, batch: 500, every: 60s}`` sends the segment's
membership changes, in batches of at most ``batch`` and at least every ``every``, to the ``webhook`` sink
of the routes file (``docs/segments.md``). The segmenter checks the setting where a segment is defined (the
segment file, the API, which stores it in ``segment_definitions.sync``); the notifier, which sends the
batches, reads it here from the same two places.

The setting names a sink of the routes file rather than holding a URL: the webhook's address, signing
secret and headers stay with the operator (secrets from the environment, never in SQL), and a token that
may define segments cannot make the hub post customers' contact points to an address of its choosing.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator
from sqlalchemy import Engine, select

from crmhub.core.durations import format_duration, parse_duration
from crmhub.core.errors import ConfigError
from schemas.tables import segment_definitions

MAX_BATCH = 10_000


class AudienceSync(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    webhook: str = Field(min_length=1, max_length=64, description="A webhook sink of the routes file.")
    batch: int = Field(500, ge=1, le=MAX_BATCH, description="The most changes a request carries.")
    every: timedelta = Field(
        timedelta(seconds=60), description="The longest a change waits for its batch (30s, 5m, 1h)."
    )

    @field_validator("every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        every = parse_duration(value) if isinstance(value, str) else value
        if isinstance(every, timedelta) and every < timedelta(seconds=1):
            raise ValueError("every must be 1s or more")
        return every

    @field_serializer("every")
    def _write_duration(self, every: timedelta) -> str:
        return format_duration(every)


def parse_sync(raw: Any, segment: str) -> AudienceSync:
    """The setting ``raw`` (a mapping, or its JSON) of ``segment``; :class:`ConfigError` naming both when wrong."""
    try:
        if isinstance(raw, str | bytes):
            return AudienceSync.model_validate_json(raw)
        return AudienceSync.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'sync'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"segment {segment!r}: bad sync setting: {problems}") from None


def _file_entries(path: Path | None) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text()) if path is not None else None
    return [i for i in (doc or {}).get("segments") or [] if isinstance(i, dict)]


def _syncs_of(entries: list[dict[str, Any]]) -> dict[str, AudienceSync]:
    return {str(i["name"]): parse_sync(i["sync"], str(i["name"])) for i in entries if i.get("sync") is not None}


def stored_syncs(engine: Engine) -> dict[str, AudienceSync]:
    """The settings of the segments made through the API (a stored one that no longer parses is left out)."""
    sd = segment_definitions
    with engine.connect() as conn:
        rows = conn.execute(select(sd.c.name, sd.c.sync).where(sd.c.sync.is_not(None))).all()
    found = {}
    for name, raw in rows:
        try:
            found[name] = parse_sync(raw, name)
        except ConfigError:
            continue
    return found


def current_syncs(segments_file: Path | None, engine: Engine) -> dict[str, AudienceSync]:
    """Every sync setting in force by segment: the segment file's (None: the shipped library, which has
    none), then the API's (a segment of the file shadows one of the API)."""
    entries = _file_entries(segments_file)
    in_file = {str(i.get("name")) for i in entries}
    stored = {name: sync for name, sync in stored_syncs(engine).items() if name not in in_file}
    return {**stored, **_syncs_of(entries)}


def sync_json(sync: AudienceSync | None) -> str | None:
    """How a setting is stored (``segment_definitions.sync``)."""
    return None if sync is None else sync.model_dump_json()
