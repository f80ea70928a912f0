"""segmenter wiring (faust-streaming): crm.profiles.v1 -> evaluate -> crm.segments.v1 + membership view."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis

from crmhub.faust_app import create_app, run_worker
from crmhub.settings import Settings
from crmhub.stats import STATS_KEY
from crmhub.topics import PROFILES, SEGMENTS
from schemas.outputs import SegmentChange
from services.segmenter.keys import MEMBERS_PREFIX
from services.segmenter.rules import SegmentDef, evaluate, load_definitions, membership_changes, profile_view

log = logging.getLogger("crmhub.segmenter")


def build(settings: Settings) -> faust.App:
    app = create_app("crmhub-segmenter", settings)
    defs: list[SegmentDef] = load_definitions(settings.segments_file)
    profiles_topic = app.topic(PROFILES, key_type=bytes, value_type=bytes)
    segments_topic = app.topic(SEGMENTS, key_type=bytes, value_type=bytes)
    membership = app.Table("membership", default=list, partitions=settings.partitions)
    view = aioredis.Redis.from_url(settings.redis_dsn)
    log.info("segmenter evaluating %d segments: %s", len(defs), ", ".join(d.name for d in defs))

    @app.agent(profiles_topic)
    async def evaluate_profiles(stream: Any) -> None:
        async for event in stream.events():
            profile = orjson.loads(event.value)
            pid = profile["profile_id"]
            before = set(membership[pid])
            after = evaluate(defs, profile_view(profile))
            entered, exited = membership_changes(before, after)
            pipe = view.pipeline(transaction=False)
            # the view is rewritten for every evaluated segment, so it heals after a crash
            for d in defs:
                if d.name in after:
                    pipe.sadd(MEMBERS_PREFIX + d.name, pid)
                else:
                    pipe.srem(MEMBERS_PREFIX + d.name, pid)
            pipe.hincrby(STATS_KEY, "segmenter.evaluated", 1)
            if entered or exited:
                membership[pid] = sorted(after)
                now = datetime.now(UTC)
                for name, change in [(n, "entered") for n in entered] + [(n, "exited") for n in exited]:
                    out = SegmentChange(
                        segment=name,
                        profile_id=pid,
                        change=change,
                        at=now,
                        profile_version=profile.get("version", 0),
                    )
                    await segments_topic.send(key=pid.encode(), value=out.model_dump_json().encode())
                pipe.hincrby(STATS_KEY, "segmenter.entered", len(entered))
                pipe.hincrby(STATS_KEY, "segmenter.exited", len(exited))
            await pipe.execute()

    return app


def main() -> None:
    settings = Settings()
    run_worker(build(settings), settings, "segmenter")
