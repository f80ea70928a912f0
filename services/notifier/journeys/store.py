"""SQL of the journeys made through the API: the version in force per journey, and every version saved
(a deletion too), so that what a customer was sent can be traced to the definition that sent it.

Saving numbers the version: one more than the last saved for that id, so a journey deleted and made again
goes on counting (message ids carry the version: a new definition never reuses an old one's ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, delete, func, select

from crmhub.core.sql import aware, upsert
from schemas.tables import journey_definitions, journey_versions


@dataclass(frozen=True)
class StoredJourney:
    id: str
    version: int
    doc: dict[str, Any]  # the definition as posted, with its version
    updated_at: datetime


@dataclass(frozen=True)
class SavedVersion:
    version: int
    doc: dict[str, Any] | None  # None: deleted
    saved_at: datetime
    saved_by: str


class JourneyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def journeys(self) -> list[StoredJourney]:
        jd = journey_definitions
        with self.engine.connect() as conn:
            rows = conn.execute(select(jd.c.id, jd.c.version, jd.c.doc, jd.c.updated_at).order_by(jd.c.id))
            return [StoredJourney(i, v, orjson.loads(d), aware(u)) for i, v, d, u in rows]

    def next_version(self, journey_id: str) -> int:
        with self.engine.connect() as conn:
            last = conn.execute(
                select(func.max(journey_versions.c.version)).where(journey_versions.c.id == journey_id)
            ).scalar()
        return int(last or 0) + 1

    def save(self, journey_id: str, doc: dict[str, Any], saved_by: str, now: datetime) -> None:
        """Put ``doc`` (carrying its version, from :meth:`next_version`) in force and keep it."""
        text = orjson.dumps(doc).decode()
        row = {"id": journey_id, "version": doc["version"], "doc": text, "updated_at": now.astimezone(UTC)}
        with self.engine.begin() as conn:
            conn.execute(
                journey_versions.insert(), [self._version_row(journey_id, doc["version"], text, saved_by, now)]
            )
            conn.execute(upsert(self.engine, journey_definitions, [row], ["id"]), [row])

    def delete(self, journey_id: str, saved_by: str, now: datetime) -> bool:
        version = self.next_version(journey_id)
        with self.engine.begin() as conn:
            gone = conn.execute(delete(journey_definitions).where(journey_definitions.c.id == journey_id)).rowcount
            if gone:
                conn.execute(journey_versions.insert(), [self._version_row(journey_id, version, None, saved_by, now)])
        return bool(gone)

    def versions(self, journey_id: str) -> list[SavedVersion]:
        """Every version saved, newest first."""
        jv = journey_versions
        query = select(jv.c.version, jv.c.doc, jv.c.saved_at, jv.c.saved_by).where(jv.c.id == journey_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(jv.c.version.desc()))
            return [SavedVersion(v, orjson.loads(d) if d else None, aware(at), by) for v, d, at, by in rows]

    @staticmethod
    def _version_row(journey_id: str, version: int, doc: str | None, saved_by: str, now: datetime) -> dict[str, Any]:
        return {"id": journey_id, "version": version, "doc": doc, "saved_at": now.astimezone(UTC), "saved_by": saved_by}
