"""The profile store (SQLAlchemy 2.0): profiles, identifiers, each profile's recent events (its timeline)
and consumer offsets, written in one txn; and the ids and identifiers of erased profiles.

Instances guard their writes (:class:`Expect`): a save names the offset it expects each partition's
stored offset to be at and the version it expects each profile it writes to have, and writes nothing
when the store holds something else. So an instance that lost its partitions to another one cannot
commit behind its back (:class:`Fenced`), and two instances that write the same profile (a merge writes
the absorbed profile, which hashes to another partition; an erase deletes a profile being folded)
cannot overwrite each other's update (:class:`StaleProfiles`: fold again from what the store holds).

Offsets are stored with the incarnation of the topic they were read from, so offsets of a broker that
was reset (the embedded broker keeps topics in memory) are recognised as stale and ignored.

The tables are in :mod:`schemas.tables` (the segmenter reads ``profiles`` through
:mod:`schemas.readmodels.profiles`); engines and migrations are in :mod:`crmhub.core.sql`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from crmhub.core.errors import CrmhubError, Retryable
from crmhub.core.sql import aware, dialect_insert, upsert
from schemas.events import Event
from schemas.profile import Profile
from schemas.readmodels.profiles import ProfileReader, profile_doc
from schemas.tables import (
    consumer_offsets,
    erased_profiles,
    folded_inputs,
    identifiers,
    profile_events,
    profiles,
    suppressed_identifiers,
)
from services.profile.report_store import add_deltas
from services.profile.reports import ReportDeltas, units
from services.profile.timeline import chunks, write_timeline


class Fenced(CrmhubError):
    """The stored offsets of these partitions moved on: another instance owns them now."""

    def __init__(self, partitions: Sequence[tuple[str, int]]) -> None:
        super().__init__(f"partitions {sorted(partitions)} were committed by another instance")
        self.partitions = list(partitions)


class StaleProfiles(Retryable):
    """These profiles changed (or appeared, or were erased) since they were read."""

    def __init__(self, profile_ids: Sequence[str]) -> None:
        super().__init__(f"{len(profile_ids)} profile(s) changed since they were read: {sorted(profile_ids)[:5]}")
        self.profile_ids = list(profile_ids)


@dataclass(frozen=True)
class Expect:
    """What a guarded save requires the store to hold before it writes anything.

    ``offsets``: per partition of the save's ``next_offsets``, the next offset the store must hold for it
    (None: no offset of this incarnation). ``versions``: per profile the save writes, the version the
    store must hold (None: no such profile)."""

    offsets: Mapping[tuple[str, int], int | None] = field(default_factory=dict)
    versions: Mapping[str, int | None] = field(default_factory=dict)


class ProfileStore(ProfileReader):
    """The profile service's reads and writes; the reads others make too are :class:`ProfileReader`'s."""

    def save(
        self,
        changed: Sequence[Profile],
        new_identifiers: Sequence[tuple[str, str, str]],
        group_id: str,
        incarnation: str,
        next_offsets: Mapping[tuple[str, int], int],
        timeline: Sequence[tuple[str, Event]] = (),
        moved: Mapping[str, str] | None = None,
        *,
        expect: Expect | None = None,
        before_write: Callable[[], object] | None = None,
        docs: Mapping[str, bytes] | None = None,
        inputs: Sequence[int] = (),
        reports: ReportDeltas | None = None,
    ) -> None:
        """Write profiles, their new (kind, value, profile_id) identifiers, the consumer offsets and the
        timeline in one transaction. With ``expect``, first check that the store holds what it says
        (else raise :class:`Fenced` or :class:`StaleProfiles` and write nothing); ``before_write`` runs
        once the checks passed, inside the transaction (the profile service publishes there: publish,
        then commit). ``docs``: the changed profiles' JSON by id, if the caller has it. ``inputs``: the
        intake journal seqs of the batch's events (see :meth:`folded_among`); ``reports``: its roll-ups."""
        profile_rows = _profile_rows(changed, docs)
        offset_rows = [
            {"group_id": group_id, "topic": t, "partition": part, "incarnation": incarnation, "next_offset": o}
            for (t, part), o in next_offsets.items()
        ]
        with self.engine.begin() as conn:
            if expect is not None:
                self._claim_offsets(conn, group_id, incarnation, next_offsets, expect.offsets)
                offset_rows = []  # claimed
                profile_rows = self._insert_new(conn, profile_rows, expect)
            if before_write is not None:
                before_write()
            self._upsert(conn, profiles, profile_rows, ["profile_id"])
            self._upsert(conn, identifiers, _identifier_rows(new_identifiers), ["kind", "value"])
            self._upsert(conn, consumer_offsets, offset_rows, ["group_id", "topic", "partition"])
            write_timeline(conn, timeline, moved or {})
            self._mark_folded(conn, inputs)
            add_deltas(conn, reports or ReportDeltas())

    def _mark_folded(self, conn: Connection, inputs: Sequence[int]) -> None:
        if inputs:
            insert = dialect_insert(self.engine, folded_inputs).on_conflict_do_nothing()
            conn.execute(insert, [{"seq": seq} for seq in inputs])

    def _insert_new(self, conn: Connection, rows: list[dict[str, Any]], expect: Expect) -> list[dict[str, Any]]:
        """Check the versions the store holds; insert the profiles it must not hold yet, and return the
        other rows. A plain insert: a profile another instance made meanwhile is a conflict
        (:class:`StaleProfiles`), not overwritten."""
        self._check_versions(conn, {r["profile_id"]: expect.versions.get(r["profile_id"]) for r in rows})
        new = [r for r in rows if expect.versions.get(r["profile_id"]) is None]
        if new:
            try:
                conn.execute(profiles.insert(), new)
            except IntegrityError as exc:
                raise StaleProfiles([r["profile_id"] for r in new]) from exc
        return [r for r in rows if expect.versions.get(r["profile_id"]) is not None]

    def _upsert(self, conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
        if rows:
            conn.execute(upsert(self.engine, table, rows, keys), rows)

    def _claim_offsets(
        self,
        conn: Connection,
        group_id: str,
        incarnation: str,
        next_offsets: Mapping[tuple[str, int], int],
        expected: Mapping[tuple[str, int], int | None],
    ) -> None:
        """Move each partition's stored offset from the expected one to the next; :class:`Fenced` when a
        partition's stored offset is not the expected one. The first statement of a guarded save."""
        if self.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock before the checks read
        co = consumer_offsets
        lost = []
        for (topic, part), new in sorted(next_offsets.items()):
            was = expected.get((topic, part))
            key = (co.c.group_id == group_id, co.c.topic == topic, co.c.partition == part)
            if was is None:  # none of this incarnation: insert, or replace a stale incarnation's row
                ins = dialect_insert(self.engine, co).values(
                    group_id=group_id, topic=topic, partition=part, incarnation=incarnation, next_offset=new
                )
                stmt = ins.on_conflict_do_update(
                    index_elements=["group_id", "topic", "partition"],
                    set_={"incarnation": ins.excluded.incarnation, "next_offset": ins.excluded.next_offset},
                    where=co.c.incarnation != ins.excluded.incarnation,
                )
            else:
                stmt = (
                    update(co)
                    .where(*key, co.c.incarnation == incarnation, co.c.next_offset == was)
                    .values(next_offset=new)
                )
            if conn.execute(stmt.returning(co.c.partition)).first() is None:  # (rowcount: -1 on psycopg)
                lost.append((topic, part))
        if lost:
            raise Fenced(lost)

    def _check_versions(self, conn: Connection, expected: Mapping[str, int | None]) -> None:
        """:class:`StaleProfiles` unless every profile has the expected version (None: absent); the rows
        stay locked (PostgreSQL) until the transaction ends, in id order so instances cannot deadlock."""
        ids = sorted(expected)
        stored: dict[str, int] = {}
        for chunk in chunks(ids):
            query = select(profiles.c.profile_id, profiles.c.version).where(profiles.c.profile_id.in_(chunk))
            stored.update(
                (str(pid), int(v)) for pid, v in conn.execute(query.order_by(profiles.c.profile_id).with_for_update())
            )
        stale = [pid for pid in ids if stored.get(pid) != expected[pid]]
        if stale:
            raise StaleProfiles(stale)

    def timeline(
        self, profile_id: str, limit: int | None = None, before: datetime | None = None, offset: int = 0
    ) -> list[dict[str, Any]]:
        """The profile's stored events, newest first: ``{event_id, type, source, occurred_at, event}``."""
        pe = profile_events
        query = select(pe.c.event_id, pe.c.type, pe.c.source, pe.c.occurred_at, pe.c.doc).where(
            pe.c.profile_id == profile_id
        )
        if before is not None:
            query = query.where(pe.c.occurred_at < before.astimezone(UTC))
        query = query.order_by(pe.c.occurred_at.desc(), pe.c.event_id.desc()).offset(offset).limit(limit)
        with self.engine.connect() as conn:
            return [
                {"event_id": eid, "type": kind, "source": src, "occurred_at": aware(at), "event": doc}
                for eid, kind, src, at, doc in conn.execute(query)
            ]

    def forget_events_before(self, cutoff: datetime) -> int:
        """Delete the timeline's events that occurred before ``cutoff`` (retention); how many."""
        old = profile_events.c.occurred_at < cutoff.astimezone(UTC)
        with self.engine.begin() as conn:
            return int(conn.execute(delete(profile_events).where(old)).rowcount)

    def identifiers_of(self, profile_id: str) -> list[tuple[str, str]]:
        """The (kind, value) identifiers the identifiers table gives the profile."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(identifiers.c.kind, identifiers.c.value)
                .where(identifiers.c.profile_id == profile_id)
                .order_by(identifiers.c.kind, identifiers.c.value)
            )
            return [(str(kind), str(value)) for kind, value in rows]

    def offset_incarnations(self, group_id: str, topic: str) -> set[str]:
        """The topic incarnations the stored offsets of ``group_id`` belong to."""
        query = select(consumer_offsets.c.incarnation).distinct()
        query = query.where(consumer_offsets.c.group_id == group_id, consumer_offsets.c.topic == topic)
        with self.engine.connect() as conn:
            return {str(i) for i in conn.execute(query).scalars()}

    def start_incarnation(self, group_id: str, topic: str, incarnation: str, partitions: int) -> None:
        """Offsets 0 on every partition of a new incarnation: the hub drained the old broker before it
        replaced it, so nothing of it is left to hand again (:mod:`crmhub.broker_budget`)."""
        rows = [
            {"group_id": group_id, "topic": topic, "partition": p, "incarnation": incarnation, "next_offset": 0}
            for p in range(partitions)
        ]
        with self.engine.begin() as conn:
            self._upsert(conn, consumer_offsets, rows, ["group_id", "topic", "partition"])

    def docs_changed_since(self, since: datetime, chunk: int = 1000) -> Iterator[list[tuple[str, bytes]]]:
        """(profile id, stored JSON) of the profiles changed at or after ``since``, a chunk at a time."""
        last = ""
        while True:
            query = select(profiles.c.profile_id, profiles.c.doc).where(
                profiles.c.profile_id > last, profiles.c.updated_at >= since
            )
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(profiles.c.profile_id).limit(chunk)).all()
            if not rows:
                return
            yield [(str(pid), str(doc).encode()) for pid, doc in rows]
            last = rows[-1][0]

    def folded_among(self, seqs: Iterable[int]) -> set[int]:
        """Those of the intake journal ``seqs`` whose inputs were folded already."""
        found: set[int] = set()
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(seqs))):
                found.update(conn.execute(select(folded_inputs.c.seq).where(folded_inputs.c.seq.in_(chunk))).scalars())
        return found

    def forget_folded_inputs(self, upto_seq: int) -> None:
        """The journal no longer holds the inputs up to ``upto_seq``: none of them can come again."""
        with self.engine.begin() as conn:
            conn.execute(folded_inputs.delete().where(folded_inputs.c.seq <= upto_seq))

    def erased_among(self, profile_ids: Iterable[str]) -> set[str]:
        """Those of ``profile_ids`` that were erased (one query a 500 ids)."""
        ids = sorted(set(profile_ids))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in chunks(ids):
                rows = conn.execute(select(erased_profiles.c.profile_id).where(erased_profiles.c.profile_id.in_(chunk)))
                found.update(rows.scalars())
        return found

    def erase(self, profile_ids: Sequence[str], erased_at: datetime, suppress: Sequence[tuple[str, str]] = ()) -> None:
        """Delete the profiles, their identifiers and timelines, and remember their ids as erased and the
        (kind, value) identifiers to ``suppress`` (the suppression list: kept so that suppression
        outlives a Redis loss), in one transaction (``profile_ids``: a profile and the stubs of those
        merged into it)."""
        ids = list(profile_ids)
        rows = [{"profile_id": pid, "erased_at": erased_at} for pid in ids]
        suppressed = [{"kind": k, "value": v, "erased_at": erased_at} for k, v in sorted(set(suppress))]
        with self.engine.begin() as conn:
            if suppressed:
                conn.execute(dialect_insert(self.engine, suppressed_identifiers).on_conflict_do_nothing(), suppressed)
            conn.execute(delete(profile_events).where(profile_events.c.profile_id.in_(ids)))
            conn.execute(delete(identifiers).where(identifiers.c.profile_id.in_(ids)))
            conn.execute(delete(profiles).where(profiles.c.profile_id.in_(ids)))
            if rows:
                conn.execute(dialect_insert(self.engine, erased_profiles).on_conflict_do_nothing(), rows)

    def offsets(self, group_id: str, topic: str, incarnation: str) -> dict[int, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(consumer_offsets.c.partition, consumer_offsets.c.next_offset).where(
                    consumer_offsets.c.group_id == group_id,
                    consumer_offsets.c.topic == topic,
                    consumer_offsets.c.incarnation == incarnation,
                )
            )
            return {int(p): int(o) for p, o in rows}

    def count_identifiers(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(identifiers)).scalar_one())

    def iter_identifiers(self, chunk: int = 5000) -> Iterator[list[tuple[str, str, str]]]:
        """Every (kind, value, profile id) of the identifiers table, a chunk at a time, in key order."""
        last = ("", "")
        while True:
            after = tuple_(identifiers.c.kind, identifiers.c.value) > last
            query = select(identifiers.c.kind, identifiers.c.value, identifiers.c.profile_id).where(after)
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(identifiers.c.kind, identifiers.c.value).limit(chunk)).all()
            if not rows:
                return
            yield [(str(k), str(v), str(p)) for k, v, p in rows]
            last = (rows[-1][0], rows[-1][1])

    def suppressed(self) -> list[tuple[str, str]]:
        """The (kind, value) identifiers of erased profiles, whose events are suppressed."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(suppressed_identifiers.c.kind, suppressed_identifiers.c.value).order_by(
                    suppressed_identifiers.c.kind, suppressed_identifiers.c.value
                )
            )
            return [(str(k), str(v)) for k, v in rows]

    def profile_id_for(self, kind: str, value: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(identifiers.c.profile_id).where(identifiers.c.kind == kind, identifiers.c.value == value)
            ).first()
            return None if row is None else str(row[0])


def _profile_rows(changed: Sequence[Profile], docs: Mapping[str, bytes] | None) -> list[dict[str, Any]]:
    return [
        {
            "profile_id": p.profile_id,
            "version": p.version,
            "updated_at": p.updated_at,
            "doc": (docs[p.profile_id] if docs else profile_doc(p)).decode(),
            "currency": p.currency,
            "net_units": units(p.net_revenue) if p.currency else None,
        }
        for p in changed
    ]


def _identifier_rows(new_identifiers: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """One row per identifier (the last profile named wins): PostgreSQL refuses to upsert a row twice."""
    latest = {(kind, value): pid for kind, value, pid in new_identifiers}
    return [{"kind": kind, "value": value, "profile_id": pid} for (kind, value), pid in latest.items()]
