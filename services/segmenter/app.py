"""segmenter wiring (faust-streaming): profile changes -> evaluate -> crm.segments.v1 + membership view."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis

from crmhub import metrics
from crmhub.faust_app import create_app, run_worker
from crmhub.settings import Settings
from crmhub.stats import STATS_KEY
from crmhub.topics import PROFILE_CHANGES, SEGMENTS
from schemas.outputs import SegmentChange
from services.segmenter.keys import MEMBERS_PREFIX
from services.segmenter.rules import SegmentDef, evaluate, load_definitions, membership_changes, profile_view

log = logging.getLogger("crmhub.segmenter")
SERVICE = "segmenter"
FLUSH_EVERY = 500
FLUSH_INTERVAL_S = 0.1


class MembershipView:
    """Redis sets of segment members, written in one pipeline per batch of evaluated profiles.

    Every evaluation rewrites the profile's membership in every segment, so the view heals itself
    after a crash between the table update and the Redis write.
    """

    def __init__(self, redis: Any, defs: list[SegmentDef]) -> None:
        self.redis = redis
        self.defs = defs
        self.pending: dict[str, set[str]] = {}
        self.entered = self.exited = self.evaluated = 0
        self.changes: Counter[tuple[str, ...]] = Counter()  # (segment, entered/exited) since the last flush

    def record(self, profile_id: str, members: set[str], entered: list[str], exited: list[str]) -> None:
        self.pending[profile_id] = members
        self.evaluated += 1
        self.entered += len(entered)
        self.exited += len(exited)
        self.changes.update([*((name, "entered") for name in entered), *((name, "exited") for name in exited)])

    async def flush(self) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, {}
        pipe = self.redis.pipeline(transaction=False)
        for d in self.defs:
            key = MEMBERS_PREFIX + d.name
            inside = [pid for pid, members in pending.items() if d.name in members]
            outside = [pid for pid, members in pending.items() if d.name not in members]
            if inside:
                pipe.sadd(key, *inside)
            if outside:
                pipe.srem(key, *outside)
        for name, value in (("evaluated", self.evaluated), ("entered", self.entered), ("exited", self.exited)):
            if value:
                pipe.hincrby(STATS_KEY, f"segmenter.{name}", value)
        metrics.count(metrics.CONSUMED, {(SERVICE, PROFILE_CHANGES, "profile"): self.evaluated})
        metrics.count(metrics.PRODUCED, {(SERVICE, SEGMENTS, change): n for (_, change), n in self.changes.items()})
        metrics.count(metrics.SEGMENT_CHANGES, self.changes)
        self.entered = self.exited = self.evaluated = 0
        self.changes = Counter()
        await pipe.execute()


def build(settings: Settings) -> faust.App:
    app = create_app("crmhub-segmenter", settings)
    defs: list[SegmentDef] = load_definitions(settings.segments_file)
    changes_topic = app.topic(PROFILE_CHANGES, key_type=bytes, value_type=bytes)
    segments_topic = app.topic(SEGMENTS, key_type=bytes, value_type=bytes)
    membership = app.Table("membership", default=list, partitions=settings.partitions)
    view = MembershipView(aioredis.Redis.from_url(settings.redis_dsn), defs)
    log.info("segmenter evaluating %d segments: %s", len(defs), ", ".join(d.name for d in defs))

    @app.agent(changes_topic)
    async def evaluate_profiles(stream: Any) -> None:
        # each record is a batch of profile changes of profiles that hash to its partition, so table
        # writes made while handling it go to the right changelog partition
        async for event in stream.events():
            started = time.monotonic()
            for profile in orjson.loads(event.value):
                await evaluate_profile(profile)
            metrics.BATCH_SECONDS.labels(SERVICE).observe(time.monotonic() - started)
            if len(view.pending) >= FLUSH_EVERY:
                await view.flush()

    async def evaluate_profile(profile: dict[str, Any]) -> None:
        pid = profile["profile_id"]
        before = set(membership[pid])
        after = evaluate(defs, profile_view(profile))
        entered, exited = membership_changes(before, after)
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
        view.record(pid, after, entered, exited)

    @app.timer(interval=FLUSH_INTERVAL_S)
    async def flush_view() -> None:
        await view.flush()

    return app


def main() -> None:
    settings = Settings()
    run_worker(build, settings, "segmenter")
