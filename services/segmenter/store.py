"""SQL of the segmenter: segment definitions made through the API, and segment sizes over time.

The tables are in :mod:`schemas.tables` with the profile tables (one database, one migration history in
``crmhub/core/migrations``), so every process that opens the database has them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, select

from crmhub.core.sql import aware, dialect_insert, upsert
from schemas.tables import segment_definitions, segment_sizes


@dataclass(frozen=True)
class StoredDefinition:
    name: str
    description: str
    condition: str
    updated_at: datetime


class SegmentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def definitions(self) -> list[StoredDefinition]:
        sd = segment_definitions
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sd.c.name, sd.c.description, sd.c.condition, sd.c.updated_at).order_by(sd.c.name)
            )
            return [StoredDefinition(n, d, c, aware(u)) for n, d, c, u in rows]

    def put(self, name: str, description: str, condition: str, now: datetime, sync: str | None = None) -> None:
        """Define or change ``name``; ``sync``: its audience sync setting as JSON (crmhub.core.audience)."""
        row = {"name": name, "description": description, "condition": condition, "updated_at": now, "sync": sync}
        with self.engine.begin() as conn:
            conn.execute(upsert(self.engine, segment_definitions, [row], ["name"]), [row])

    def delete(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(segment_definitions).where(segment_definitions.c.name == name)).rowcount)

    def record_sizes(self, sizes: Mapping[str, int], at: datetime) -> None:
        """One row per segment at ``at`` (a sample time shared by every instance: the first one wins)."""
        rows = [{"segment": name, "at": at.astimezone(UTC), "size": size} for name, size in sizes.items()]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(dialect_insert(self.engine, segment_sizes).on_conflict_do_nothing(), rows)

    def history(self, name: str, since: datetime | None, limit: int) -> list[tuple[datetime, int]]:
        """(sample time, size) of the segment, newest first."""
        ss = segment_sizes
        query = select(ss.c.at, ss.c.size).where(ss.c.segment == name)
        if since is not None:
            query = query.where(ss.c.at >= since.astimezone(UTC))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(ss.c.at.desc()).limit(limit))
            return [(aware(at), int(size)) for at, size in rows]
