"""Retention on a real SQLite store and Redis server: old timeline events and old dead letters' inputs go,
the rest stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import insert

from crmhub.core.kafka import topic_configs
from crmhub.core.sql import make_engine
from crmhub.core.stats import RECENT_DEADLETTERS
from crmhub.core.topics import DEADLETTER, EVENTS
from crmhub.retention import prune
from schemas.tables import profile_events
from services.profile.store import ProfileStore

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def event(event_id: str, age_days: float) -> dict[str, Any]:
    at = NOW - timedelta(days=age_days)
    return {
        "profile_id": "p-1",
        "event_id": event_id,
        "occurred_at": at,
        "type": "pos.sale",
        "source": "pos",
        "doc": "{}",
    }


def letter(age_days: float) -> bytes:
    at = (NOW - timedelta(days=age_days)).isoformat()
    return orjson.dumps({"reason": "bad", "source": "http", "received_at": at, "original": "ann@example.com"})


def test_old_events_and_old_originals_are_deleted(tmp_path: Path, redis_client: Any) -> None:
    store = ProfileStore(make_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}"))
    with store.engine.begin() as conn:
        conn.execute(insert(profile_events), [event("old", 31), event("new", 29)])
    redis_client.rpush(RECENT_DEADLETTERS, letter(1), letter(40))

    assert prune(store, redis_client, NOW, days=30) == 1
    assert [row["event_id"] for row in store.timeline("p-1")] == ["new"]
    recent, old = (orjson.loads(d) for d in redis_client.lrange(RECENT_DEADLETTERS, 0, -1))
    assert recent["original"] == "ann@example.com"
    assert "original" not in old and old["reason"] == "bad" and old["received_at"]
    assert prune(store, redis_client, NOW, days=30) == 0  # nothing more


def test_the_dead_letter_topic_is_made_with_the_retention() -> None:
    assert topic_configs(DEADLETTER, False, 30) == {"retention.ms": str(30 * 86_400_000)}
    assert topic_configs(DEADLETTER, False, 0) == {}
    assert topic_configs(EVENTS, False, 30) == {}
