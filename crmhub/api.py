"""The HTTP API: Segment-compatible collector, profiles, segments, alerts, health. OpenAPI at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

import orjson
import redis
import uvicorn
from fastapi import FastAPI

from crmhub import __version__, access, privacy, reports
from crmhub.core import kafka as kafka_io
from crmhub.core.logs import setup_logging
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from crmhub.core.stats import RECENT_DEADLETTERS, read_counts
from crmhub.core.tokens import Principal
from crmhub.core.web import OpsRead, RequestIds, Res, Resources
from crmhub.dashboard import http as dashboard_http
from crmhub.durable_intake import Intake
from crmhub.ops import BrokerProbe, redact_letters
from crmhub.retention import Retention
from services.ingest import collector, raw_http
from services.ingest.cors import CollectorCORS
from services.notifier import http as alerts_http
from services.notifier.journeys import http as journeys_http
from services.profile import http as profiles_http
from services.profile.store import ProfileStore
from services.segmenter import http as segments_http

clock = partial(datetime.now, UTC)
MAX_CONNECTIONS = 1000


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # max_block_ms: a send waits at most this long for the broker's metadata (then the 503)
        producer = kafka_io.producer(settings, linger_ms=2, max_block_ms=3000)
        store = ProfileStore(make_engine(settings.sql_url))
        intake = Intake(settings, store) if settings.journals_intake else None
        app.state.resources = Resources(
            settings=settings,
            redis=redis.Redis.from_url(settings.redis_dsn),
            engine=store.engine,
            producer=producer,
            intake=intake.commit if intake else None,
        )
        app.state.broker_probe = BrokerProbe(settings)
        retention = Retention(store, app.state.resources.redis, settings.retention_days, clock)
        if intake:
            intake.start()
        if settings.retention_days:
            retention.start()
        yield
        if settings.retention_days:
            retention.stop()
        if intake:
            intake.stop()
        app.state.broker_probe.close()
        producer.close()

    app = FastAPI(
        title="crmhub",
        version=__version__,
        lifespan=lifespan,
        description="Collector (Segment tracking API), unified profiles, segments and alerts.",
    )
    app.add_middleware(RequestIds)
    app.add_middleware(CollectorCORS, origins=settings.cors_origin_list, is_collector_path=collector.is_collector_path)
    for router in (
        collector.router,
        raw_http.router,
        profiles_http.router,
        privacy.router,
        segments_http.router,
        alerts_http.router,
        journeys_http.router,
        reports.router,
        dashboard_http.router,
        access.router,
    ):
        app.include_router(router)

    @app.get("/health", tags=["ops"], summary="Liveness: the API process answers")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/stats", tags=["ops"])
    def stats(res: Res, who: Annotated[Principal, OpsRead]) -> dict[str, Any]:
        letters = [orjson.loads(d) for d in res.redis.lrange(RECENT_DEADLETTERS, 0, 19)]
        return {"counts": read_counts(res.redis), "recent_deadletters": redact_letters(letters, who)}

    return app


def main() -> None:
    settings = Settings()
    setup_logging(settings, "api")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    kafka_io.wait_until_reachable(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn's loggers go through ours (text or JSON, see setup_logging)
        timeout_graceful_shutdown=3,  # an open dashboard stream does not hold up a stop
        timeout_keep_alive=5,  # an idle connection is closed after 5 s
        limit_concurrency=MAX_CONNECTIONS,  # beyond it: 503 at once rather than memory for every slow client
    )


if __name__ == "__main__":
    main()
