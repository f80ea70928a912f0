"""Cross-origin access to the collector, and to nothing else.

Browser SDKs post from the shop's pages, another origin than crmhub's: the browser asks first (a CORS
preflight) for JSON bodies or an ``Authorization`` header, and reads the answer of any request only if
it allows the page's origin. Starlette's ``CORSMiddleware`` does the protocol; this wrapper applies it to
the collector's paths only, so the read API (profiles, exports, alerts) never answers another origin.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

PREFLIGHT_MAX_AGE_S = 86400  # a browser asks once a day, not before every batch


class CollectorCORS:
    def __init__(self, app: ASGIApp, origins: list[str], is_collector_path: Callable[[str], bool]) -> None:
        self.app = app
        self.is_collector_path = is_collector_path
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],  # Content-Type, Authorization, and SDK headers such as RudderStack's AnonymousId
            expose_headers=["X-Request-Id"],
            max_age=PREFLIGHT_MAX_AGE_S,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.is_collector_path(scope["path"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
