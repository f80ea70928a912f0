"""The profile store (SQLAlchemy 2.0): profiles, identifiers and consumer offsets, written in one txn.

Offsets are stored with the incarnation of the topic they were read from, so offsets of a broker that
was reset (the embedded broker keeps topics in memory) are recognised as stale and ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from schemas.profile import Profile

metadata = MetaData()

profiles = Table(
    "profiles",
    metadata,
    Column("profile_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("doc", Text, nullable=False),
)
identifiers = Table(
    "identifiers",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("value", String(255), primary_key=True),
    Column("profile_id", String(64), nullable=False),
    Index("ix_identifiers_profile", "profile_id"),
)
consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("group_id", String(128), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("incarnation", String(64), nullable=False),
    Column("next_offset", BigInteger, nullable=False),
)


def make_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        if engine.url.database and engine.url.database != ":memory:":
            Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    metadata.create_all(engine)
    return engine


def _upsert(engine: Engine, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]) -> Any:
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)


class ProfileStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, profile_ids: Iterable[str]) -> dict[str, Profile]:
        ids = list(profile_ids)
        found: dict[str, Profile] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = conn.execute(
                    select(profiles.c.profile_id, profiles.c.doc).where(profiles.c.profile_id.in_(chunk))
                )
                for pid, doc in rows:
                    found[pid] = Profile.model_validate_json(doc)
        return found

    def save(
        self,
        changed: Sequence[Profile],
        new_identifiers: Sequence[tuple[str, str, str]],
        group_id: str,
        incarnation: str,
        next_offsets: Mapping[tuple[str, int], int],
    ) -> None:
        """Write profiles, their new (kind, value, profile_id) identifiers and the consumer offsets in one
        transaction."""
        profile_rows = [
            {"profile_id": p.profile_id, "version": p.version, "updated_at": p.updated_at, "doc": p.model_dump_json()}
            for p in changed
        ]
        id_rows = [{"kind": kind, "value": value, "profile_id": pid} for kind, value, pid in new_identifiers]
        offset_rows = [
            {"group_id": group_id, "topic": t, "partition": part, "incarnation": incarnation, "next_offset": o}
            for (t, part), o in next_offsets.items()
        ]
        with self.engine.begin() as conn:
            if profile_rows:
                conn.execute(_upsert(self.engine, profiles, profile_rows, ["profile_id"]), profile_rows)
            if id_rows:
                conn.execute(_upsert(self.engine, identifiers, id_rows, ["kind", "value"]), id_rows)
            if offset_rows:
                conn.execute(
                    _upsert(self.engine, consumer_offsets, offset_rows, ["group_id", "topic", "partition"]), offset_rows
                )

    def offsets(self, group_id: str, topic: str, incarnation: str) -> dict[int, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(consumer_offsets.c.partition, consumer_offsets.c.next_offset).where(
                    consumer_offsets.c.group_id == group_id,
                    consumer_offsets.c.topic == topic,
                    consumer_offsets.c.incarnation == incarnation,
                )
            )
            return {int(p): int(o) for p, o in rows}

    def profile_id_for(self, kind: str, value: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(identifiers.c.profile_id).where(identifiers.c.kind == kind, identifiers.c.value == value)
            ).first()
            return None if row is None else str(row[0])
