"""``crmhub tokens create/list/revoke``: the hub's API tokens, on its database directly (whoever can run
this can read the database anyway)."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from crmhub.core.errors import ConfigError
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from crmhub.core.tokens import TokenStore


def store(settings: Settings) -> TokenStore:
    return TokenStore(make_engine(settings.sql_url))


def create(settings: Settings, name: str, scopes: frozenset[str]) -> tuple[str, str]:
    return store(settings).create(name, scopes, datetime.now(UTC))


def revoke(settings: Settings, token_id: str) -> None:
    if not store(settings).revoke(token_id, datetime.now(UTC)):
        raise ConfigError(f"no live token {token_id!r} (crmhub tokens list)")


def print_list(settings: Settings) -> None:
    table = Table("id", "name", "scopes", "created", "revoked")
    for row in store(settings).list():
        revoked = row["revoked_at"].isoformat(timespec="seconds") if row["revoked_at"] else ""
        created = row["created_at"].isoformat(timespec="seconds")
        table.add_row(row["token_id"], row["name"], ",".join(row["scopes"]), created, revoked)
    Console().print(table)
