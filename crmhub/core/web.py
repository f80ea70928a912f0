"""What the API's routers share: the process-wide resources and the scoped token checks
(:mod:`crmhub.core.tokens`)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from kafka import KafkaProducer
from sqlalchemy import Engine
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crmhub.core.audit import Access, AuditLog
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


REQUEST_ID_HEADER = "X-Request-Id"
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


def audit(request: Request, res: Resources, action: str, profile_id: str | None = None, detail: str = "") -> None:
    """Record in the audit log that the request's principal did ``action`` (sync: call it off the loop)."""
    who: Principal = request.state.principal
    access = Access(who.token_id, action, profile_id, request_id_of(request), detail)
    AuditLog(res.engine).record(access)


def request_id_of(request: Request) -> str | None:
    found: str | None = getattr(request.state, "request_id", None)
    return found


class RequestIds:
    """ASGI middleware: every request gets an id (``request.state.request_id``, which the audit log records)
    and the answer says it in ``X-Request-Id`` (unless the route set its own, as the collector does)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    headers.append(REQUEST_ID_HEADER, request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)


Res = Annotated[Resources, Depends(resources)]
ProfilesRead = require("profiles:read")
ProfilesErase = require("profiles:erase")
SegmentsWrite = require("segments:write")
EventsWrite = require("events:write")
OpsRead = require("ops:read")
Admin = require("admin")
