"""The audit log: who read, exported or erased whom, replayed dead letters, made or revoked tokens.

One row an access, in SQL (table ``audit_log``), append-only: the application only inserts, and the
migration's triggers refuse any UPDATE or DELETE, so not even a bug of ours rewrites history. A row names
a token by its id (never its secret), a profile by its id and the API request by its id; it never holds
personal data (no e-mail looked up, no name), so the log itself needs no erasure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from crmhub.core.sql import aware
from schemas.tables import audit_log

CLI = "cli"  # the token id of what the command line does on the database directly
MAX_PAGE = 1000

# what is recorded: action -> when
ACTIONS = {
    "profile.read": "a profile's personal data read: the profile, its timeline, its segments, a condition test",
    "profile.export": "everything held about a person exported",
    "profile.erase": "a person erased",
    "alerts.read": "alerts (summaries naming people) listed or acknowledged",
    "journeys.read": "a person's journey history read",
    "segment.members": "a page of a segment's members read",
    "segment.export": "a segment's members exported with their consented contact points",
    "deadletters.replay": "dead letters' original inputs sent back to their raw topics",
    "token.create": "an API token made",
    "token.revoke": "an API token revoked",
    "audit.read": "the audit log read or exported",
    "journey.save": "a journey made, changed, paused or resumed through the API",
    "journey.delete": "a journey deleted through the API",
}


@dataclass(frozen=True)
class Access:
    token_id: str
    action: str
    profile_id: str | None = None
    request_id: str | None = None
    detail: str = ""


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, *accesses: Access, now: datetime | None = None) -> None:
        at = now or datetime.now(UTC)
        rows = [{**a.__dict__, "at": at, "detail": a.detail[:500]} for a in accesses]
        with self.engine.begin() as conn:
            conn.execute(insert(audit_log), rows)

    def page(self, after: int = 0, limit: int = MAX_PAGE, profile_id: str | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` rows with an id above ``after``, oldest first (``after`` = the last id seen)."""
        query = select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id)
        if profile_id is not None:
            query = query.where(audit_log.c.profile_id == profile_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(min(limit, MAX_PAGE))).mappings().all()
        return [{str(k): aware(v) if k == "at" else v for k, v in row.items()} for row in rows]  # plain str keys
