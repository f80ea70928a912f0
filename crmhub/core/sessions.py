"""Dashboard sessions: sign in once with a token, then an HttpOnly, SameSite=Strict cookie.

The cookie holds a random session id, never the token; Redis keeps only the id's SHA-256 digest, with
the token's id, for ``SESSION_TTL_S``. Every request rechecks that the token is still live, so revoking a
token ends its sessions at once. A session authenticates only safe methods (GET, HEAD): the dashboard
only reads, and a page of another site can then make a signed-in browser change nothing (SameSite=Strict
already keeps the cookie off cross-site requests; this is the second lock).
"""

from __future__ import annotations

import secrets
from typing import Any

from crmhub.core.tokens import BOOTSTRAP, BOOTSTRAP_ID, Principal, TokenStore, digest

COOKIE = "crmhub_session"
SESSION_TTL_S = 8 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD"})
_KEY = "crmhub:session:"


def _holder(who: Principal, bootstrap_secret: str) -> str:
    """What a session records of its token: the id; for the bootstrap token also its digest, so that a
    changed ``CRMHUB_API_TOKEN`` ends the sessions opened with the old one."""
    return f"{BOOTSTRAP_ID}:{digest(bootstrap_secret)}" if who.token_id == BOOTSTRAP_ID else who.token_id


def open_session(redis: Any, who: Principal, bootstrap_secret: str) -> str:
    """A new session of ``who``: the id to set as the cookie."""
    session_id = secrets.token_urlsafe(32)
    redis.set(_KEY + digest(session_id), _holder(who, bootstrap_secret), ex=SESSION_TTL_S)
    return session_id


def close_session(redis: Any, session_id: str) -> None:
    redis.delete(_KEY + digest(session_id))


def session_principal(redis: Any, tokens: TokenStore, session_id: str, bootstrap_secret: str) -> Principal | None:
    """Who the session ``session_id`` is, while it lasts and its token is live."""
    held = redis.get(_KEY + digest(session_id))
    if held is None:
        return None
    holder = held.decode()
    if holder.startswith(f"{BOOTSTRAP_ID}:"):
        current = _holder(BOOTSTRAP, bootstrap_secret)
        return BOOTSTRAP if secrets.compare_digest(holder, current) else None
    return tokens.live_principal(holder)
