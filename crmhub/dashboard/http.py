"""``/metrics`` (every process's metrics, aggregated), ``/ready``, ``/v1/ops`` (one snapshot with rates),
``/v1/stream`` (server-sent snapshots, every second), ``/dashboard`` (the page that shows them) and
``/dashboard/reports`` (the reports page, reading ``/v1/reports/*``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Annotated, Any

import orjson
import redis
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from crmhub.core.metrics import exposition, restarts_exposition
from crmhub.core.sessions import COOKIE, SESSION_TTL_S, close_session, open_session
from crmhub.core.settings import MAX_OVER_S
from crmhub.core.stats import read_counts, restarts
from crmhub.core.tokens import Principal
from crmhub.core.web import OpsRead, Res, Resources, authenticate, authorize, bootstrap_secret
from crmhub.ops import rates, readiness, redact, snapshot

router = APIRouter(tags=["ops"])
PAGE = files("crmhub.dashboard").joinpath("index.html")
REPORTS_PAGE = files("crmhub.dashboard").joinpath("reports.html")


@router.get("/metrics", summary="Prometheus metrics of every crmhub process", response_class=Response)
def metrics(res: Res) -> Response:
    try:
        supervised = restarts_exposition(restarts(read_counts(res.redis)))
    except redis.RedisError:  # Redis away: the processes' own metrics still answer
        supervised = b""
    return Response(exposition() + supervised, media_type=CONTENT_TYPE_LATEST)


@router.get("/ready", summary="Readiness: 200 when the broker, Redis and SQL answer, else 503 naming what is down")
def ready(request: Request, res: Res) -> JSONResponse:
    checks = readiness(res, request.app.state.broker_probe)
    down = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "ready" if not down else "not ready: " + ", ".join(down) + " down", "checks": checks}
    return JSONResponse(body, status_code=503 if down else 200)


def with_rates(res: Resources, over_s: float, who: Principal) -> dict[str, Any]:
    first = snapshot(res, time.monotonic())
    time.sleep(over_s)
    second = redact(snapshot(res, time.monotonic()), who)
    return {**second, "rates": rates(first, second)}


@router.get("/v1/ops", summary="Every figure of the dashboard once, rates over `over` seconds")
def ops(
    res: Res,
    who: Annotated[Principal, OpsRead],
    over: float = Query(1.0, gt=0, le=MAX_OVER_S, description="Seconds between the two samples."),
) -> Any:
    return with_rates(res, over, who)


@router.get("/v1/stream", summary="The dashboard's figures as server-sent events")
async def stream(
    request: Request,
    res: Res,
    who: Annotated[Principal, OpsRead],
    interval: float = Query(1.0, ge=0.2, le=60, description="Seconds between events."),
) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        before: dict[str, Any] | None = None
        while not await request.is_disconnected():
            now = redact(await run_in_threadpool(snapshot, res, time.monotonic()), who)
            yield b"data: " + orjson.dumps({**now, "rates": rates(before or now, now)}) + b"\n\n"
            before = now
            await asyncio.sleep(interval)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get(
    "/dashboard", summary="The live ops dashboard (a page; sign in once with a token)", response_class=HTMLResponse
)
def dashboard() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})


@router.get(
    "/dashboard/reports",
    summary="The reports page (figures of /v1/reports; sign in on /dashboard)",
    response_class=HTMLResponse,
)
def reports_page() -> HTMLResponse:
    return HTMLResponse(REPORTS_PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard")


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=500, description="An API token holding ops:read.")


@router.post("/v1/session", summary="Sign in to the dashboard: a session cookie (HttpOnly, SameSite=Strict)")
def sign_in(body: SignIn, request: Request, res: Res) -> JSONResponse:
    who = authorize(request, authenticate(res, body.token), "ops:read")
    session_id = open_session(res.redis, who, bootstrap_secret(res))
    answer = JSONResponse({"token_id": who.token_id, "scopes": sorted(who.scopes)})
    answer.set_cookie(
        COOKIE,
        session_id,
        max_age=SESSION_TTL_S,
        httponly=True,  # no script of the page (nor an injected one) reads it
        samesite="strict",  # no other site's page sends it
        secure=request.url.scheme == "https",
    )
    return answer


@router.get("/v1/session", summary="Who the dashboard session (or token) is")
def session(who: Annotated[Principal, OpsRead]) -> dict[str, Any]:
    return {"token_id": who.token_id, "scopes": sorted(who.scopes)}


@router.delete("/v1/session", status_code=204, summary="Sign out: the session ends, the cookie is cleared")
def sign_out(request: Request, res: Res) -> Response:
    session_id = request.cookies.get(COOKIE)
    if session_id:
        close_session(res.redis, session_id)
    answer = Response(status_code=204)
    answer.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return answer
