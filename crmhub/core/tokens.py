"""Scoped API tokens: who may do what through the API (docs/security.md).

A token is ``crm_<id>_<secret part>``: the id names it in listings and in the audit log, the whole string
is the secret. SQL keeps only the SHA-256 digest of the whole string, so a copy of the database gives
nobody a working token; the secret part has 256 random bits, so a fast digest is enough (a slow password
hash is for guessable secrets). A presented token is looked up by its id and its digest compared with
``secrets.compare_digest``, in constant time.

``CRMHUB_API_TOKEN`` (settings) stays valid as the bootstrap ``admin`` token, id ``bootstrap``: with it
the first scoped tokens are made, and the embedded default keeps working with the printed dev token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from crmhub.core.sql import aware
from schemas.tables import api_tokens

# what each scope lets a token do; ``admin`` implies every other scope
SCOPES = {
    "profiles:read": "read personal data: profiles, timelines, exports, alerts, segment members",
    "profiles:erase": "erase a person (GDPR Article 17)",
    "segments:write": "define, change and delete segments",
    "events:write": "post raw JSON lines (crmhub publish)",
    "ops:read": "the dashboard, status, segment sizes, dead-letter reasons (no original bytes)",
    "admin": "everything: dead-letter replay, tokens, the audit log",
}
ADMIN = "admin"
BOOTSTRAP_ID = "bootstrap"
PREFIX = "crm_"


@dataclass(frozen=True)
class Principal:
    """Who a request speaks for: a token's id (never its secret) and its scopes."""

    token_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes


BOOTSTRAP = Principal(BOOTSTRAP_ID, frozenset({ADMIN}))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(value: str) -> frozenset[str]:
    """``"profiles:read,ops:read"`` -> the scopes; raises ValueError naming an unknown one."""
    scopes = frozenset(s.strip() for s in value.split(",") if s.strip())
    unknown = sorted(scopes - SCOPES.keys())
    if unknown or not scopes:
        raise ValueError(f"unknown or no scopes {unknown}: choose among {', '.join(SCOPES)}")
    return scopes


def token_id_of(secret: str) -> str | None:
    """The id part of ``crm_<id>_<secret part>``, or None for anything else."""
    if not secret.startswith(PREFIX):
        return None
    token_id, sep, rest = secret[len(PREFIX) :].partition("_")
    return token_id if sep and token_id and rest else None


class TokenStore:
    """The ``api_tokens`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, scopes: frozenset[str], now: datetime) -> tuple[str, str]:
        """A new token: its id and its secret (shown once, never stored)."""
        token_id = secrets.token_hex(6)
        secret = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        row = {"token_id": token_id, "name": name, "scopes": ",".join(sorted(scopes))}
        with self.engine.begin() as conn:
            conn.execute(insert(api_tokens).values(**row, secret_sha256=digest(secret), created_at=now))
        return token_id, secret

    def revoke(self, token_id: str, now: datetime) -> bool:
        """Revoke a live token; False when there is no such live token."""
        live = (api_tokens.c.token_id == token_id) & api_tokens.c.revoked_at.is_(None)
        with self.engine.begin() as conn:
            return conn.execute(update(api_tokens).where(live).values(revoked_at=now)).rowcount == 1

    def list(self) -> list[dict[str, Any]]:
        """Every token, newest first, without its digest."""
        cols = [c for c in api_tokens.c if c.name != "secret_sha256"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols).order_by(api_tokens.c.created_at.desc())).mappings().all()
        return [_listed(dict(row)) for row in rows]

    def principal(self, secret: str) -> Principal | None:
        """Who a presented secret is, or None when it is no live token."""
        token_id = token_id_of(secret)
        if token_id is None:
            return None
        query = select(api_tokens.c.secret_sha256, api_tokens.c.scopes).where(
            (api_tokens.c.token_id == token_id) & api_tokens.c.revoked_at.is_(None)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or not secrets.compare_digest(digest(secret), row.secret_sha256):
            return None
        return Principal(token_id, frozenset(row.scopes.split(",")))

    def live_principal(self, token_id: str) -> Principal | None:
        """The token ``token_id`` while it is not revoked (a dashboard session rechecks it every request)."""
        query = select(api_tokens.c.scopes).where(
            (api_tokens.c.token_id == token_id) & api_tokens.c.revoked_at.is_(None)
        )
        with self.engine.connect() as conn:
            scopes = conn.execute(query).scalar()
        return None if scopes is None else Principal(token_id, frozenset(scopes.split(",")))


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    row["scopes"] = row["scopes"].split(",")
    row["created_at"] = aware(row["created_at"])
    row["revoked_at"] = row["revoked_at"] and aware(row["revoked_at"])
    return row
