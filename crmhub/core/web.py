"""What the API's routers share: the process-wide resources and the scoped token checks
(:mod:`crmhub.core.tokens`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from kafka import KafkaProducer
from sqlalchemy import Engine

from crmhub.core.intake import GroupCommit
from crmhub.core.sessions import COOKIE, SAFE_METHODS, session_principal
from crmhub.core.settings import Settings
from crmhub.core.tokens import BOOTSTRAP, Principal, TokenStore


@dataclass
class Resources:
    """What the API process opens once: each router builds its own service's store on ``engine``."""

    settings: Settings
    redis: Any
    engine: Engine
    producer: KafkaProducer
    intake: GroupCommit | None = None  # the collector's journal (embedded broker), else produce and wait


def resources(request: Request) -> Resources:
    res: Resources = request.app.state.resources
    return res


_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def authenticate(res: Resources, given: str | None) -> Principal:
    """The principal a presented token is: the bootstrap token (settings) or a live scoped one; else 401."""
    if given is not None:
        if secrets.compare_digest(given.encode(), bootstrap_secret(res).encode()):
            return BOOTSTRAP
        found = TokenStore(res.engine).principal(given)
        if found is not None:
            return found
    raise HTTPException(
        401, "a valid API token is required: Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
    )


def bootstrap_secret(res: Resources) -> str:
    return res.settings.api_token.get_secret_value()


def caller(request: Request, res: Resources, creds: HTTPAuthorizationCredentials | None) -> Principal:
    """Who the request speaks for: its bearer token, else (reads only) its dashboard session cookie."""
    session_id = request.cookies.get(COOKIE)
    if creds is None and session_id and request.method in SAFE_METHODS:
        who = session_principal(res.redis, TokenStore(res.engine), session_id, bootstrap_secret(res))
        if who is not None:
            return who
    return authenticate(res, creds.credentials if creds else None)


def authorize(request: Request, who: Principal, scope: str) -> Principal:
    """``who`` when it holds ``scope`` (kept on the request for the audit log); else 403 naming the scope."""
    if not who.allows(scope):
        raise HTTPException(403, f"this token lacks the scope {scope!r}")
    request.state.principal = who
    return who


def require(scope: str) -> Any:
    """A dependency: the request's principal, which must hold ``scope``."""

    def check(request: Request, res: Annotated[Resources, Depends(resources)], creds: Credentials) -> Principal:
        return authorize(request, caller(request, res, creds), scope)

    return Depends(check)


Res = Annotated[Resources, Depends(resources)]
ProfilesRead = require("profiles:read")
ProfilesErase = require("profiles:erase")
SegmentsWrite = require("segments:write")
EventsWrite = require("events:write")
OpsRead = require("ops:read")
Admin = require("admin")
