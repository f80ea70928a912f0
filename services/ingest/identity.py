"""Pure identity resolution with Segment Unify's rules, on a snapshot of the identity graph.

An event's identifiers are taken strongest first (the configured priority). When none is known, the event
starts a profile whose id is derived from its strongest identifier, so every ingest instance (and every
replay) picks the same id, and all of them are linked to it. When some are known, the profile of the
strongest known one survives: the other profiles they name merge into it, and the new identifiers are
linked to it. A link or merge that would give a profile more identifiers of one kind than its limit (a
second customer id: someone else's card, a device the whole family uses) is not made: the weakest
identifier is left out and the event resolved again without it, until what is left fits. A single
identifier always fits, so every event gets a profile.

An identifier of an erased profile links to :data:`ERASED` instead of a profile id: an event carrying one
is suppressed (``Resolution.suppressed``): it names no profile, links nothing and merges nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

_NAMESPACE = uuid.UUID("6f1c0b0e-5c1a-4d8e-9a55-63726d687562")

IdKey = tuple[str, str]  # (kind, value)
ERASED = "!erased"  # what the identifiers of an erased profile link to (never a profile id: those are UUIDs)


@dataclass(frozen=True)
class IdentityRules:
    priority: tuple[str, ...]  # identifier kinds, strongest first; other kinds are ignored
    limits: Mapping[str, int]  # most identifiers of a kind one profile may hold (kinds absent: no limit)


@dataclass(frozen=True)
class Snapshot:
    """What resolution reads of the identity graph: the profile of each known identifier, and how many
    identifiers of each kind those profiles hold."""

    links: Mapping[IdKey, str]
    counts: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Merge:
    survivor: str
    absorbed: str
    linked_by: IdKey  # the event's identifier that belonged to the absorbed profile


@dataclass(frozen=True)
class Resolution:
    profile_id: str
    new_links: tuple[IdKey, ...] = ()
    merges: tuple[Merge, ...] = ()
    limited: tuple[IdKey, ...] = ()  # left unlinked: linking them would exceed a limit
    suppressed: bool = False  # an identifier belongs to an erased profile: the event is to be dropped


@dataclass(frozen=True)
class BatchPlan:
    resolutions: list[Resolution] = field(default_factory=list)  # one per event, in order
    links: dict[IdKey, str] = field(default_factory=dict)  # new links, to their profile after the batch's merges
    merges: list[Merge] = field(default_factory=list)  # in the order they happen


def mint_profile_id(kind: str, value: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{value}"))


def resolve_identity(identifiers: Mapping[str, str], snapshot: Snapshot, rules: IdentityRules) -> Resolution:
    ordered = [(kind, identifiers[kind]) for kind in rules.priority if identifiers.get(kind)]
    if not ordered:
        raise ValueError("an event with no identifiers cannot be resolved")
    if any(snapshot.links.get(key) == ERASED for key in ordered):
        return Resolution(ERASED, suppressed=True)
    kept = len(ordered)
    while (res := _resolve(ordered[:kept], snapshot, rules)) is None:
        kept -= 1
    return res if kept == len(ordered) else replace(res, limited=tuple(ordered[kept:]))


def _resolve(ordered: list[IdKey], snapshot: Snapshot, rules: IdentityRules) -> Resolution | None:
    """The resolution that links all of ``ordered``, or None when it would break a limit."""
    new: list[IdKey] = []
    named: dict[str, IdKey] = {}  # profile -> the strongest identifier naming it, strongest profile first
    for key in ordered:
        pid = snapshot.links.get(key)
        if pid is None:
            new.append(key)
        elif pid not in named:
            named[pid] = key
    if not named:
        return Resolution(mint_profile_id(*ordered[0]), tuple(new))
    survivor, *absorbed = named
    if (new or absorbed) and _exceeds(snapshot.counts, survivor, absorbed, new, rules.limits):
        return None
    return Resolution(survivor, tuple(new), tuple(Merge(survivor, pid, named[pid]) for pid in absorbed))


def _exceeds(
    counts: Mapping[str, Mapping[str, int]],
    survivor: str,
    absorbed: list[str],
    new: list[IdKey],
    limits: Mapping[str, int],
) -> bool:
    added = Counter(kind for kind, _ in new)
    for pid in absorbed:
        added.update(counts.get(pid, {}))
    held = counts.get(survivor, {})
    return any(n and kind in limits and held.get(kind, 0) + n > limits[kind] for kind, n in added.items())


def resolve_batch(batch: Sequence[Mapping[str, str]], snapshot: Snapshot, rules: IdentityRules) -> BatchPlan:
    """Resolve events in order, each seeing the links and merges of the earlier ones."""
    links = dict(snapshot.links)
    counts = dict(snapshot.counts)  # a profile's counts are replaced when they change, never changed in place
    plan = BatchPlan()
    for identifiers in batch:
        res = resolve_identity(identifiers, Snapshot(links, counts), rules)
        for merge in res.merges:
            _repoint(links, merge)
            _repoint(plan.links, merge)
            counts[merge.survivor] = Counter(counts.get(merge.survivor, {})) + Counter(counts.pop(merge.absorbed, {}))
        if res.new_links:
            held = dict(counts.get(res.profile_id, {}))
            for key in res.new_links:
                links[key] = plan.links[key] = res.profile_id
                held[key[0]] = held.get(key[0], 0) + 1
            counts[res.profile_id] = held
        plan.resolutions.append(res)
        plan.merges.extend(res.merges)
    return plan


def _repoint(links: dict[IdKey, str], merge: Merge) -> None:
    for key, pid in links.items():
        if pid == merge.absorbed:
            links[key] = merge.survivor
