"""JSON Schema files of crmhub's contracts, written by ``crmhub schemas export``.

The files are committed under ``schemas/json/``; a test compares them with what the models produce now,
so a change of contract is a visible change in review.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from schemas.events import EVENT_ADAPTER, EVENT_MODELS, EVENT_TYPES
from schemas.outputs import Alert, DeadLetter, SegmentChange
from schemas.profile import Profile

SNAPSHOT_DIR = Path(__file__).parent / "json"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema: the event union, each event type, and every other published document."""
    schemas: dict[str, dict[str, Any]] = {"event.json": EVENT_ADAPTER.json_schema()}
    for model, event_type in zip(EVENT_MODELS, EVENT_TYPES, strict=True):
        schemas[f"events/{_slug(event_type)}.json"] = model.model_json_schema()
    documents: dict[str, type[BaseModel]] = {
        "profile.json": Profile,
        "segment-change.json": SegmentChange,
        "alert.json": Alert,
        "dead-letter.json": DeadLetter,
    }
    schemas.update({name: model.model_json_schema() for name, model in documents.items()})
    return schemas


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def export(out_dir: Path = SNAPSHOT_DIR) -> list[Path]:
    written = []
    for name, schema in json_schemas().items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(schema))
        written.append(path)
    return written
