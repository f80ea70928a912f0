"""Pure evaluation of one profile change: which segments to evaluate (the field index), the new
membership, and when to look again (the clock).

The segmenter keeps, per profile, the version it last evaluated and a hash of every view field some
segment reads (:class:`Prior`; the others cannot change a membership). A change re-evaluates only the
segments that read a field whose hash changed, plus the clock-dependent ones once the profile's next
possible flip time has come (before it, time alone cannot have changed any of them); a profile seen for
the first time, or last evaluated under definitions reading other fields, is evaluated against every
segment. A change older than the version last evaluated (a replay after a restart) is skipped, so
replays never move membership backwards.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson

from crmhub.core.conditions.clock import merged, next_flip
from crmhub.core.conditions.fields import sources_decoder, view_reader
from crmhub.core.conditions.language import SegmentDef
from services.segmenter.rules import membership_changes

_HEAD = struct.Struct("<4sIHqd")  # format, layout (the fields hashed), how many, version, due
_FORMAT = b"sgp2"  # records of another format are not read (the profile is evaluated as new)


def _reader(fields: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The values of ``fields`` of a view, as a tuple (itemgetter gives a bare value for one field)."""
    if len(fields) == 1:
        return lambda view: (view[fields[0]],)
    return itemgetter(*fields) if fields else lambda view: ()


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
        self.clock = merged(use for d in self.clocked for use in d.clock)  # when time alone can move any
        self.names = frozenset(self.by_name)
        self.fields = tuple(sorted(self.by_field))  # the fields some segment reads: the ones hashed
        self.layout = zlib.crc32(",".join(self.fields).encode())
        self.view = view_reader(self.fields)
        self.decode = sources_decoder(self.fields)  # a record of profile changes to what the view reads
        self._read = _reader(self.fields)

    def get(self, name: str) -> SegmentDef | None:
        return self.by_name.get(name)

    def hashes(self, view: dict[str, Any]) -> tuple[int, ...]:
        """A hash of each field some segment reads (:attr:`fields` order)."""
        return tuple(zlib.crc32(orjson.dumps(value, default=str)) for value in self._read(view))

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
    change its membership (a timestamp; 0: never), and a hash of each field some segment read, under the
    ``layout`` of those fields (a catalog reading other fields cannot compare them: it evaluates all)."""

    version: int
    due: float
    layout: int
    hashes: tuple[int, ...]

    def encode(self) -> bytes:
        head = _HEAD.pack(_FORMAT, self.layout, len(self.hashes), self.version, self.due)
        return head + struct.pack(f"<{len(self.hashes)}I", *self.hashes)

    @classmethod
    def decode(cls, data: bytes) -> tuple[Prior, int] | None:
        """(the prior, the bytes it took) from the start of ``data``; None for another format."""
        if len(data) < _HEAD.size:
            return None
        form, layout, count, version, due = _HEAD.unpack_from(data)
        size = _HEAD.size + 4 * count
        if form != _FORMAT or len(data) < size:
            return None
        return cls(version, due, layout, struct.unpack_from(f"<{count}I", data, _HEAD.size)), size


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
    """The profile's membership after the change ``profile`` (typed: decoded by ``catalog.decode``, or a ``Profile``,
    see :func:`~crmhub.core.conditions.fields.view_reader`) given what was known before (``prior``,
    ``members``); segments named in ``force`` are evaluated whatever changed. None when the change is older
    than the version already evaluated."""
    version = profile.version or 0
    if prior is not None and version < prior.version:
        return None
    view = catalog.view(profile)
    hashes = catalog.hashes(view)
    if prior is None or prior.layout != catalog.layout or len(prior.hashes) != len(hashes):
        due = {d.name: d for d in catalog.defs}
    else:
        changed = [name for name, old, new in zip(catalog.fields, prior.hashes, hashes, strict=True) if old != new]
        due = catalog.reading(changed, clock_due=0 < prior.due <= now.timestamp())
    due.update((name, d) for name in force if (d := catalog.get(name)) is not None)
    merged = bool(profile.merged_into)  # merged away: the survivor holds its history and segments
    inside = set() if merged else {name for name, d in due.items() if d.test(view, now)}
    after = set() if merged else ({m for m in members if m not in due} | inside) & catalog.names
    entered, exited = membership_changes(set(members), after)
    flip = next_flip(catalog.clock, view, now)
    return Outcome(
        profile_id=view["profile_id"],
        version=version,
        after=frozenset(after),
        entered=entered,
        exited=exited,
        prior=Prior(version, 0 if merged or flip is None else flip.timestamp(), catalog.layout, hashes),
        due=None if merged else flip,
        evaluated=0 if merged else len(due),
    )
