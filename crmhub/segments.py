"""``crmhub segments list``, ``show`` and ``test``: segment definitions, sizes, and a condition tried
against a stored profile before it is saved (Redis and SQL of the hub the settings name)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from crmhub.core.conditions.language import SegmentDef
from crmhub.core.errors import ConfigError
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from crmhub.hub import check_redis
from schemas.profile import Profile
from services.profile.store import ProfileStore
from services.segmenter import membership
from services.segmenter.definitions import current, try_condition
from services.segmenter.store import SegmentStore


class Hub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.sql_url)
        self.redis = redis.Redis.from_url(settings.redis_dsn, socket_connect_timeout=3)

    def check_redis(self) -> None:
        check_redis(self.settings.redis_dsn)

    def definitions(self) -> tuple[list[SegmentDef], set[str]]:
        return current(self.settings.segments_file, SegmentStore(self.engine))

    def profile(self, profile_id: str) -> Profile:
        """The stored profile, or the one it was merged into."""
        store = ProfileStore(self.engine)
        found = store.load([profile_id]).get(profile_id)
        while found is not None and found.merged_into:
            found = store.load([found.merged_into]).get(found.merged_into)
        if found is None:
            raise ConfigError(f"no profile {profile_id!r} in {self.engine.url.render_as_string(hide_password=True)}")
        return found


def print_list(settings: Settings) -> None:
    hub = Hub(settings)
    hub.check_redis()
    defs, from_file = hub.definitions()
    sizes = membership.sizes(hub.redis, [d.name for d in defs])
    table = Table(title=f"{len(defs)} segments")
    for column in ("name", "size", "source", "condition"):
        table.add_column(column, overflow="fold")
    for d in defs:
        table.add_row(d.name, str(sizes[d.name]), "file" if d.name in from_file else "api", d.condition)
    Console().print(table)


def print_segment(settings: Settings, name: str) -> None:
    hub = Hub(settings)
    hub.check_redis()
    defs, from_file = hub.definitions()
    found = next((d for d in defs if d.name == name), None)
    if found is None:
        raise ConfigError(f"no segment {name!r}; `crmhub segments list` shows them")
    rows: list[tuple[str, Any]] = [
        ("name", found.name),
        ("description", found.description),
        ("condition", found.condition),
        ("source", "file" if name in from_file else "api"),
        ("fields read", ", ".join(sorted(found.fields))),
        ("clock", ", ".join(f"{u.field} (every {u.unit})" for u in found.clock) or "no"),
        ("size", membership.sizes(hub.redis, [name])[name]),
        ("backfill", membership.backfill_progress(hub.redis, name) or "none yet"),
    ]
    history = SegmentStore(hub.engine).history(name, None, 5)
    rows += [("size at " + at.isoformat(timespec="seconds"), size) for at, size in history]
    print_rows(f"segment {name}", rows)


def print_test(settings: Settings, condition: str, profile_id: str) -> None:
    hub = Hub(settings)
    result = try_condition(condition, hub.profile(profile_id).model_dump(mode="json"), datetime.now(UTC))
    rows: list[tuple[str, Any]] = [("profile", result["profile_id"]), ("matches", result["matches"])]
    rows += [(f"  {name}", value) for name, value in result["fields"].items()]
    if result["next_flip_at"] is not None:
        rows.append(("may change at", result["next_flip_at"].isoformat(timespec="seconds")))
    print_rows(condition, rows)


def print_rows(title: str, rows: list[tuple[str, Any]]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)
