"""Retention (``CRMHUB_RETENTION_DAYS``): what is older than N days is deleted, by the API process once an
hour: the profiles' timelines (their stored events; the profiles keep what was folded from them) and the
original inputs of the recent dead letters in Redis (their reason, location and time stay). On the dead
letter topic the broker deletes them: crmhub creates ``crm.deadletter.v1`` with ``retention.ms`` of N
days (Apache Kafka applies it; the embedded broker keeps records in memory until it stops).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

import orjson
import redis
from sqlalchemy.exc import SQLAlchemyError

from crmhub.core.stats import RECENT_DEADLETTERS
from services.profile.store import ProfileStore

log = logging.getLogger("crmhub.retention")
EVERY_S = 3600.0
ORIGINAL_FIELDS = ("original", "original_encoding")


def without_old_originals(letters: list[bytes], cutoff: datetime) -> list[bytes]:
    """The letters, those received before ``cutoff`` without their original input."""
    kept = []
    for raw in letters:
        letter = orjson.loads(raw)
        if "original" in letter and datetime.fromisoformat(letter["received_at"]) < cutoff:
            raw = orjson.dumps({k: v for k, v in letter.items() if k not in ORIGINAL_FIELDS})
        kept.append(raw)
    return kept


def strip_dead_letters(client: Any, cutoff: datetime) -> None:
    """Rewrite the recent dead letters without old originals, atomically against new pushes."""

    def rewrite(pipe: Any) -> None:
        letters = without_old_originals(pipe.lrange(RECENT_DEADLETTERS, 0, -1), cutoff)
        pipe.multi()
        pipe.delete(RECENT_DEADLETTERS)
        if letters:
            pipe.rpush(RECENT_DEADLETTERS, *letters)

    client.transaction(rewrite, RECENT_DEADLETTERS)


def prune(store: ProfileStore, client: Any, now: datetime, days: int) -> int:
    """Apply the retention of ``days`` at ``now``; the number of timeline events deleted."""
    cutoff = now - timedelta(days=days)
    strip_dead_letters(client, cutoff)
    return store.forget_events_before(cutoff)


class Retention:
    """A daemon thread pruning once at start, then every :data:`EVERY_S` seconds, until stopped."""

    def __init__(self, store: ProfileStore, client: Any, days: int, clock: Any) -> None:
        self.store, self.client, self.days, self.clock = store, client, days, clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crmhub-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            try:
                deleted = prune(self.store, self.client, self.clock(), self.days)
                log.info("retention: %d timeline events older than %d days deleted", deleted, self.days)
            except (SQLAlchemyError, redis.RedisError) as exc:  # a server away: the next round tries again
                log.warning("retention skipped: %s", exc)
            if self._stopping.wait(EVERY_S):
                return
