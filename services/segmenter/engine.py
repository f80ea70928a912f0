"""Pure evaluation of one profile change: which segments to evaluate (the field index), the new
membership, and when to look again (the clock).

The segmenter keeps, per profile, the version it last evaluated and a hash of every view field
(:class:`Prior`). A change re-evaluates only the segments that read a field whose hash changed, plus the
clock-dependent ones once the profile's next possible flip time has come (before it, time alone cannot
have changed any of them); a profile seen for the first time is evaluated
against every segment. A change older than the version last evaluated (a replay after a restart) is
skipped, so replays never move membership backwards.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson

from crmhub.core.conditions.clock import next_flip, time_functions
from crmhub.core.conditions.fields import FIELD_TYPES, profile_view, source_view
from crmhub.core.conditions.language import SegmentDef
from crmhub.core.conditions.memo import memo_key
from services.segmenter.rules import membership_changes

VIEW_FIELDS = tuple(name for name in FIELD_TYPES if name in profile_view({"profile_id": ""}))
_view_values = itemgetter(*VIEW_FIELDS)
_PRIOR = struct.Struct(f"<Hqd{len(VIEW_FIELDS)}I")  # led by the number of fields: a layout tag
PRIOR_SIZE = _PRIOR.size
MEMO_SIZE = 50_000  # remembered results per segment; cleared when full


class Catalog:
    """The segment definitions in force, indexed by the fields their conditions read."""

    def __init__(self, defs: Iterable[SegmentDef]) -> None:
        self.defs = tuple(defs)
        self.by_name = {d.name: d for d in self.defs}
        by_field: dict[str, list[SegmentDef]] = {}
        for d in self.defs:
            for name in d.fields:
                by_field.setdefault(name, []).append(d)
        self.by_field = {k: tuple(v) for k, v in by_field.items()}
        self.clocked = tuple(d for d in self.defs if d.clock)
        self.names = frozenset(self.by_name)
        self.memo: dict[str, dict[Any, bool]] = {d.name: {} for d in self.defs if d.key is not None}

    def get(self, name: str) -> SegmentDef | None:
        return self.by_name.get(name)

    def evaluate(
        self, defs: Iterable[SegmentDef], view: dict[str, Any], values: Sequence[bytes], now: datetime
    ) -> set[str]:
        """The names of ``defs`` the view is in. A result is remembered under the condition's key
        (:mod:`crmhub.core.conditions.memo`), so a profile like one seen before costs a lookup, not an
        evaluation; ``values``: every view field serialised."""
        inside, scope = set(), None
        by_field = dict(zip(VIEW_FIELDS, values, strict=True))
        for d in defs:
            memo = self.memo.get(d.name)
            key = memo_key(d.key, view, by_field, now) if d.key is not None else None
            found = memo.get(key) if memo is not None else None
            if found is None:
                scope = scope or {**view, **time_functions(now)}
                found = d.matches(scope)
                if memo is not None:
                    if len(memo) >= MEMO_SIZE:
                        memo.clear()
                    memo[key] = found
            if found:
                inside.add(d.name)
        return inside

    def reading(self, changed: Iterable[str], clock_due: bool) -> dict[str, SegmentDef]:
        """The segments that read any of the ``changed`` fields, and the clock-dependent ones if
        ``clock_due``."""
        due = {d.name: d for d in self.clocked} if clock_due else {}
        for name in changed:
            due.update((d.name, d) for d in self.by_field.get(name, ()))
        return due


@dataclass(frozen=True)
class Prior:
    """What the segmenter remembers of a profile: the version evaluated, the earliest time time alone can
    change its membership (a timestamp; 0: never), and a hash of each view field."""

    version: int
    due: float
    hashes: tuple[int, ...]

    def encode(self) -> bytes:
        return _PRIOR.pack(len(VIEW_FIELDS), self.version, self.due, *self.hashes)

    @classmethod
    def decode(cls, data: bytes | None) -> Prior | None:
        if data is None or len(data) != _PRIOR.size:
            return None  # none yet: evaluate everything
        layout, version, due, *hashes = _PRIOR.unpack(data)
        return cls(version, due, tuple(hashes)) if layout == len(VIEW_FIELDS) else None  # other fields: the same


def serialise(view: dict[str, Any]) -> list[bytes]:
    """Every view field as JSON bytes, in :data:`VIEW_FIELDS` order."""
    return [orjson.dumps(value, default=str) for value in _view_values(view)]


@dataclass(frozen=True)
class Outcome:
    profile_id: str
    version: int
    after: frozenset[str]
    entered: list[str]
    exited: list[str]
    prior: Prior
    due: datetime | None  # when time alone can next change its membership
    evaluated: int  # conditions evaluated


def evaluate_change(
    catalog: Catalog,
    profile: Any,
    prior: Prior | None,
    members: Collection[str],
    now: datetime,
    force: Collection[str] = (),
) -> Outcome | None:
    """The profile's membership after the change ``profile`` (typed: a ``SegmentSource`` or a ``Profile``,
    see :func:`~crmhub.core.conditions.fields.source_view`) given what was known before (``prior``,
    ``members``); segments named in ``force`` are evaluated whatever changed. None when the change is older
    than the version already evaluated."""
    version = profile.version or 0
    if prior is not None and version < prior.version:
        return None
    view = source_view(profile)
    values = serialise(view)
    hashes = tuple(map(zlib.crc32, values))
    if prior is None:
        due = {d.name: d for d in catalog.defs}
    else:
        changed = [name for name, old, new in zip(VIEW_FIELDS, prior.hashes, hashes, strict=True) if old != new]
        due = catalog.reading(changed, clock_due=0 < prior.due <= now.timestamp())
    due.update((name, d) for name in force if (d := catalog.get(name)) is not None)
    merged = bool(profile.merged_into)  # merged away: the survivor holds its history and segments
    inside = set() if merged else catalog.evaluate(due.values(), view, values, now)
    after = set() if merged else ({m for m in members if m not in due} | inside) & catalog.names
    entered, exited = membership_changes(set(members), after)
    flip = next_flip((use for d in catalog.clocked for use in d.clock), view, now)
    return Outcome(
        profile_id=view["profile_id"],
        version=version,
        after=frozenset(after),
        entered=entered,
        exited=exited,
        prior=Prior(version, 0 if merged or flip is None else flip.timestamp(), hashes),
        due=None if merged else flip,
        evaluated=0 if merged else len(due),
    )
