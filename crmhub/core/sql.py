"""SQL plumbing shared by every process that opens the hub's database: engines, the Alembic migrations
(``crmhub/core/migrations/``, run at start by :func:`make_engine`) and dialect-neutral upserts.

The tables themselves are in :mod:`schemas.tables`. Instances that start at once take turns migrating:
PostgreSQL through an advisory lock held for the whole upgrade, SQLite (one machine) through a lock file
beside the database.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite

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
    config.set_main_option("script_location", "crmhub.core:migrations")
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


def dialect_insert(engine: Engine, table: Table) -> Any:
    return (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)


def upsert(engine: Engine, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]) -> Any:
    stmt = dialect_insert(engine, table)
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)


def add_up(engine: Engine, table: Table, keys: Sequence[str]) -> Any:
    """An insert that, on a row already there, adds its values (the columns besides ``keys``) to it."""
    stmt = dialect_insert(engine, table)
    sums = {c.name: table.c[c.name] + stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=sums)


def aware(at: datetime) -> datetime:
    """SQLite gives back naive datetimes; they were stored in UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
