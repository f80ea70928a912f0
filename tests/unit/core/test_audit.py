"""The audit log on real SQLite and PostgreSQL: rows in order, pages, append-only (triggers refuse
UPDATE and DELETE, whoever asks)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, create_engine, delete, text, update

from crmhub.core.audit import Access, AuditLog
from crmhub.core.sql import make_engine
from crmhub.embedded import embedded_postgres
from schemas.tables import audit_log

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with embedded_postgres(tmp_path_factory.mktemp("postgres") / "postgres.log") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    else:
        server: str = request.getfixturevalue("postgres_server")
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = server.rsplit("/", 1)[0] + f"/{name}"
    eng = make_engine(url)
    yield eng
    eng.dispose()


def test_accesses_are_kept_in_order_and_read_a_page_at_a_time(engine: Engine) -> None:
    log = AuditLog(engine)
    log.record(Access("t1", "profile.read", "p-1", "r-1"), Access("t1", "profile.export", "p-1", "r-2"), now=NOW)
    log.record(Access("t2", "profile.erase", "p-2", "r-3"), now=NOW)
    first = log.page(limit=2)
    assert [(r["token_id"], r["action"], r["profile_id"], r["request_id"]) for r in first] == [
        ("t1", "profile.read", "p-1", "r-1"),
        ("t1", "profile.export", "p-1", "r-2"),
    ]
    assert first[0]["at"] == NOW
    rest = log.page(after=first[-1]["id"])
    assert [r["action"] for r in rest] == ["profile.erase"]
    assert [r["request_id"] for r in log.page(profile_id="p-1")] == ["r-1", "r-2"]


@pytest.mark.parametrize(
    "change",
    [update(audit_log).values(token_id="someone-else"), delete(audit_log)],
    ids=["update", "delete"],
)
def test_the_log_refuses_to_be_rewritten(engine: Engine, change: object) -> None:
    AuditLog(engine).record(Access("t1", "profile.erase", "p-1", "r-1"), now=NOW)
    with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.execute(change)  # type: ignore[call-overload]
    assert [r["token_id"] for r in AuditLog(engine).page()] == ["t1"]
