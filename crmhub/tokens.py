"""``crmhub tokens create/list/revoke`` and ``crmhub audit export``: the hub's API tokens and audit log, on
its database directly (whoever can run this can read the database anyway); recorded as done by ``cli``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import IO

import orjson
from rich.console import Console
from rich.table import Table

from crmhub.core.audit import CLI, Access, AuditLog
from crmhub.core.errors import ConfigError
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from crmhub.core.tokens import TokenStore


def store(settings: Settings) -> TokenStore:
    return TokenStore(make_engine(settings.sql_url))


def create(settings: Settings, name: str, scopes: frozenset[str]) -> tuple[str, str]:
    tokens = store(settings)
    token_id, secret = tokens.create(name, scopes, datetime.now(UTC))
    AuditLog(tokens.engine).record(Access(CLI, "token.create", detail=f"{token_id}: {','.join(sorted(scopes))}"))
    return token_id, secret


def revoke(settings: Settings, token_id: str) -> None:
    tokens = store(settings)
    if not tokens.revoke(token_id, datetime.now(UTC)):
        raise ConfigError(f"no live token {token_id!r} (crmhub tokens list)")
    AuditLog(tokens.engine).record(Access(CLI, "token.revoke", detail=token_id))


def export_audit(settings: Settings, out: IO[bytes], after: int) -> int:
    """Write the audit log after the id ``after`` as JSON lines, oldest first; the number of lines."""
    log = AuditLog(make_engine(settings.sql_url))
    written = 0
    while page := log.page(after):
        out.write(b"".join(orjson.dumps(row) + b"\n" for row in page))
        written, after = written + len(page), page[-1]["id"]
    log.record(Access(CLI, "audit.read", detail=f"{written} entries exported"))
    return written


def print_list(settings: Settings) -> None:
    table = Table("id", "name", "scopes", "created", "revoked")
    for row in store(settings).list():
        revoked = row["revoked_at"].isoformat(timespec="seconds") if row["revoked_at"] else ""
        created = row["created_at"].isoformat(timespec="seconds")
        table.add_row(row["token_id"], row["name"], ",".join(row["scopes"]), created, revoked)
    Console().print(table)
