"""The identity facet: every identifier of a person's events, with when each was first and last seen.

At most ``MAX_IDS_PER_KIND`` values per kind (user id, anonymous id, e-mail, …) are kept; a profile with
that many stops taking new ones of the kind (they still resolve at ingest)."""

from __future__ import annotations

from datetime import datetime

from schemas.events import Event
from schemas.profile import Profile, Seen
from services.profile.facets import Facet
from services.profile.policy import FoldRules

MAX_IDS_PER_KIND = 50


def fold_identifiers(p: Profile, e: Event, rules: FoldRules) -> None:
    for kind, value in e.identifiers().items():
        _add_identifier(p, kind, value, e.occurred_at)


def _add_identifier(p: Profile, kind: str, value: str, at: datetime) -> None:
    values = p.identifiers.setdefault(kind, [])
    if value not in values:
        if len(values) >= MAX_IDS_PER_KIND:
            return
        values.append(value)
    seen = p.identifier_seen.setdefault(kind, {})
    known = seen.get(value)
    if known is None:
        seen[value] = Seen(at, at)
    elif at > known.last or at < known.first:
        seen[value] = Seen(min(known.first, at), max(known.last, at))


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Identifiers united (the survivor's first), each first seen the earlier and last seen the later."""
    merged.identifiers = _union_identifiers(survivor.identifiers, absorbed.identifiers)
    merged.identifier_seen = _union_seen(merged.identifiers, survivor.identifier_seen, absorbed.identifier_seen)


def _union_identifiers(first: dict[str, list[str]], second: dict[str, list[str]]) -> dict[str, list[str]]:
    united = {kind: list(values) for kind, values in first.items()}
    for kind, values in second.items():
        mine = united.setdefault(kind, [])
        mine += [v for v in values if v not in mine][: max(0, MAX_IDS_PER_KIND - len(mine))]
    return united


def _union_seen(
    ids: dict[str, list[str]], first: dict[str, dict[str, Seen]], second: dict[str, dict[str, Seen]]
) -> dict[str, dict[str, Seen]]:
    united: dict[str, dict[str, Seen]] = {}
    for kind, values in ids.items():
        mine, theirs = first.get(kind, {}), second.get(kind, {})
        per_kind = {}
        for value in values:
            a, b = mine.get(value), theirs.get(value)
            if a and b:
                per_kind[value] = Seen(first=min(a.first, b.first), last=max(a.last, b.last))
            elif a or b:
                per_kind[value] = a or b  # type: ignore[assignment]
        if per_kind:
            united[kind] = per_kind
    return united


FACET = Facet("identity", merge, every=fold_identifiers)
