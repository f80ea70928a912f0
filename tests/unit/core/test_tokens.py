"""Scoped API tokens on a real SQLite store: digests only, revocation, scopes, the write keys' rotation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from crmhub.core.setting_values import parse_write_keys
from crmhub.core.sql import make_engine
from crmhub.core.tokens import ADMIN, TokenStore, parse_scopes, token_id_of
from schemas.tables import api_tokens

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(make_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}"))


def test_a_token_is_known_by_its_secret_and_stored_only_as_a_digest(store: TokenStore) -> None:
    token_id, secret = store.create("support desk", frozenset({"profiles:read"}), NOW)
    who = store.principal(secret)
    assert who is not None and who.token_id == token_id and who.scopes == {"profiles:read"}
    with store.engine.connect() as conn:
        stored = conn.execute(select(api_tokens)).mappings().one()
    assert secret not in "".join(str(v) for v in stored.values())
    assert stored["secret_sha256"] != secret and len(stored["secret_sha256"]) == 64


def test_a_wrong_secret_of_a_known_id_and_garbage_are_nobody(store: TokenStore) -> None:
    token_id, secret = store.create("ops", frozenset({"ops:read"}), NOW)
    assert store.principal(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert store.principal(f"crm_{token_id}_") is None
    assert store.principal("crmhub-dev-token") is None
    assert store.principal("") is None


def test_a_revoked_token_is_nobody_and_stays_listed(store: TokenStore) -> None:
    token_id, secret = store.create("old", frozenset({"ops:read"}), NOW)
    assert store.revoke(token_id, NOW)
    assert not store.revoke(token_id, NOW)  # once
    assert store.principal(secret) is None and store.live_principal(token_id) is None
    (listed,) = store.list()
    assert listed["token_id"] == token_id and listed["revoked_at"] == NOW and "secret_sha256" not in listed


def test_admin_allows_every_scope_others_only_their_own(store: TokenStore) -> None:
    _, admin = store.create("root", frozenset({ADMIN}), NOW)
    _, reader = store.create("reader", frozenset({"ops:read"}), NOW)
    admin_who, reader_who = store.principal(admin), store.principal(reader)
    assert admin_who is not None and admin_who.allows("profiles:erase")
    assert reader_who is not None and reader_who.allows("ops:read") and not reader_who.allows("profiles:read")


def test_scopes_are_checked_by_name() -> None:
    assert parse_scopes(" profiles:read, ops:read ") == {"profiles:read", "ops:read"}
    with pytest.raises(ValueError, match="profiles:write"):
        parse_scopes("profiles:write")
    with pytest.raises(ValueError):
        parse_scopes("")
    assert token_id_of("crm_ab12_xyz") == "ab12" and token_id_of("ab12_xyz") is None


def test_a_source_may_have_two_write_keys_at_once_for_a_rotation() -> None:
    assert parse_write_keys("old-web-key:web,new-web-key:web,pos-key:pos") == {
        "old-web-key": "web",
        "new-web-key": "web",
        "pos-key": "pos",
    }
