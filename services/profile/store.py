"""The profile store (SQLAlchemy 2.0): profiles, identifiers and consumer offsets, written in one txn.

Offsets are stored with the incarnation of the topic they were read from, so offsets of a broker that
was reset (the embedded broker keeps topics in memory) are recognised as stale and ignored.

The schema is made by Alembic migrations (``services/profile/migrations/``), which every process that
opens the store runs at start (:func:`upgrade`). Instances that start at once take turns: PostgreSQL
through an advisory lock held for the whole upgrade, SQLite (one machine) through a lock file beside
the database. The tables below describe the head revision for queries; a test checks that the
migrations make exactly them.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
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
    inspect,
    select,
    text,
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


BASELINE_REVISION = "0001"  # the schema metadata.create_all made before migrations existed
_PG_MIGRATION_LOCK = 0x63726D68  # pg_advisory_lock key of the store's migrations ("crmh")


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs use psycopg 3 (the driver the postgres extra installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, migrate: bool = True) -> Engine:
    """An engine on the store at ``url``, its schema upgraded to the latest migration unless ``migrate``
    is false."""
    engine = create_engine(normalise_url(url), pool_pre_ping=True)
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

    if migrate:
        upgrade(engine)
    return engine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "services.profile:migrations")
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the store to ``revision``, one process at a time; a store made before migrations existed
    (tables, no ``alembic_version``) is stamped with the baseline first instead of being created again."""
    config = alembic_config()
    with _migration_lock(engine) as conn:
        config.attributes["connection"] = conn
        tables = set(inspect(conn).get_table_names())
        if "profiles" in tables and "alembic_version" not in tables:
            command.stamp(config, BASELINE_REVISION)
        command.upgrade(config, revision)
        conn.commit()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection that alone may migrate the store while the block runs."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                conn.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        with engine.connect() as conn:
            yield conn
        return
    with open(f"{database}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
        # one row per identifier (the last profile named wins): PostgreSQL refuses to upsert a row twice
        latest = {(kind, value): pid for kind, value, pid in new_identifiers}
        id_rows = [{"kind": kind, "value": value, "profile_id": pid} for (kind, value), pid in latest.items()]
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
