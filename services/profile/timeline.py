"""The write side of a profile's timeline (its recent events, in ``profile_events``), inside the profile
store's transaction: the batch's events stored once each, under the profile they were folded into,
merged profiles' events moved to their survivors, and every timeline kept to its newest
:data:`TIMELINE_CAP` events. Reads are :meth:`services.profile.store.ProfileStore.timeline`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from crmhub.core.sql import dialect_insert
from schemas.events import Event
from schemas.tables import profile_events

TIMELINE_CAP = 200  # most events kept a profile; older ones are deleted as new ones come


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_timeline(conn: Connection, timeline: Sequence[tuple[str, Event]], moved: Mapping[str, str]) -> None:
    """``timeline``: the batch's (profile id, event) pairs, each under the profile it was folded into;
    an event stored before (a replay) is not stored again. ``moved``: profiles merged away in the
    batch, to their survivors, whose timelines take their events. Then the timelines touched keep
    their newest :data:`TIMELINE_CAP` events."""
    pe = profile_events
    for absorbed, survivor in moved.items():
        # an event both hold (stored under each before the merge) stays once, the survivor's
        held = select(pe.c.event_id).where(pe.c.profile_id == survivor).scalar_subquery()
        conn.execute(delete(pe).where(pe.c.profile_id == absorbed, pe.c.event_id.in_(held)))
        conn.execute(update(pe).where(pe.c.profile_id == absorbed).values(profile_id=survivor))
    rows = {
        (pid, ev.event_id): {
            "profile_id": pid,
            "event_id": ev.event_id,
            "occurred_at": ev.occurred_at.astimezone(UTC),
            "type": ev.type,
            "source": ev.source,
            "doc": ev.model_dump_json(),
        }
        for pid, ev in timeline
    }
    if rows:
        conn.execute(dialect_insert(conn.engine, pe).on_conflict_do_nothing(), list(rows.values()))
    touched = sorted({pid for pid, _ in rows} | set(moved.values()))
    for chunk in chunks(touched):
        over = conn.execute(
            select(pe.c.profile_id)
            .where(pe.c.profile_id.in_(chunk))
            .group_by(pe.c.profile_id)
            .having(func.count() > TIMELINE_CAP)
        ).scalars()
        for pid in over:
            _trim(conn, pid)


def _trim(conn: Connection, profile_id: str) -> None:
    """Delete the profile's events older than its newest :data:`TIMELINE_CAP` (ties at the cut stay)."""
    pe = profile_events
    cut = (
        select(pe.c.occurred_at)
        .where(pe.c.profile_id == profile_id)
        .order_by(pe.c.occurred_at.desc())
        .limit(1)
        .offset(TIMELINE_CAP - 1)
        .scalar_subquery()
    )
    conn.execute(delete(pe).where(pe.c.profile_id == profile_id, pe.c.occurred_at < cut))
