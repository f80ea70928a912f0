"""Pure profile merging: a ``profile.merged`` event folds the absorbed profile into the survivor.

What remains of the absorbed profile is a stub: empty, with ``merged_into`` naming the survivor. Events
stamped with the absorbed id that arrive later (they travel on its partition, so they may overtake the
merge or lag behind it) go to the profile it was merged into, in as many steps as there were merges.
A merge seen again (a redelivery) finds both ids naming the same profile and changes nothing but the
version, like any duplicate event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from schemas.events import Event, ProfileMerged
from schemas.profile import Profile
from services.profile.facets.registry import FACETS
from services.profile.fold import fold_events, new_profile, upgraded, working_copy
from services.profile.policy import DEFAULT_RULES, FoldRules


def merge_profiles(survivor: Profile, absorbed: Profile, rules: FoldRules = DEFAULT_RULES) -> Profile:
    """The survivor with the absorbed profile's history, each facet merging its own fields (its rule is
    in its module: identifiers united, counters and amounts summed per currency, the newer trait, the
    later consent decision, the newer cart, …; derived fields computed again). The version counts the
    events of both."""
    survivor, absorbed = upgraded(working_copy(survivor), rules), upgraded(working_copy(absorbed), rules)
    merged = working_copy(survivor)
    merged.version = survivor.version + absorbed.version
    merged.created_at = min(survivor.created_at, absorbed.created_at)
    merged.updated_at = max(survivor.updated_at, absorbed.updated_at)
    for facet in FACETS:
        facet.merge(merged, survivor, absorbed, rules)
    return merged


def merged_stub(absorbed: Profile | None, absorbed_id: str, survivor_id: str, merge: ProfileMerged) -> Profile:
    """What is left of the absorbed profile (absent if its events have not arrived yet): a pointer."""
    created = absorbed.created_at if absorbed else merge.occurred_at
    return Profile(
        profile_id=absorbed_id,
        version=(absorbed.version if absorbed else 0) + 1,
        created_at=created,
        updated_at=max(absorbed.updated_at, merge.occurred_at) if absorbed else created,
        merged_into=survivor_id,
    )


def survivor_of(profiles: Mapping[str, Profile], profile_id: str) -> str:
    """The profile an id stands for now: itself, or the one it was merged into (in one or more steps)."""
    while (p := profiles.get(profile_id)) is not None and p.merged_into:
        profile_id = p.merged_into
    return profile_id


def fold_batch(
    current: Mapping[str, Profile], routed: Iterable[tuple[str, Event]], rules: FoldRules = DEFAULT_RULES
) -> dict[str, Profile]:
    """Fold (profile id, event) pairs in order into ``current`` (the profiles they name, with the ones
    merged profiles point to); return the profiles changed, stubs of absorbed ones included."""
    work = dict(current)
    changed: dict[str, Profile] = {}
    pending: dict[str, list[Event]] = {}
    for profile_id, event in routed:
        if isinstance(event, ProfileMerged):
            _fold_pending(work, changed, pending, rules)
            for profile in _merge(work, event, rules):
                work[profile.profile_id] = changed[profile.profile_id] = profile
        else:
            pending.setdefault(survivor_of(work, profile_id), []).append(event)
    _fold_pending(work, changed, pending, rules)
    return changed


def _fold_pending(
    work: dict[str, Profile], changed: dict[str, Profile], pending: dict[str, list[Event]], rules: FoldRules
) -> None:
    for profile_id, events in pending.items():
        work[profile_id] = changed[profile_id] = fold_events(work.get(profile_id), profile_id, events, rules)
    pending.clear()


def _merge(work: Mapping[str, Profile], merge: ProfileMerged, rules: FoldRules) -> list[Profile]:
    """The survivor with the absorbed profile merged in and the merge event folded, and the stub."""
    survivor_id = survivor_of(work, merge.properties.survivor_id)
    absorbed_id = survivor_of(work, merge.properties.absorbed_id)
    survivor = work.get(survivor_id) or new_profile(survivor_id, merge)
    if absorbed_id == survivor_id:  # merged already
        return [fold_events(survivor, survivor_id, [merge], rules)]
    absorbed = work.get(absorbed_id)
    merged = merge_profiles(survivor, absorbed, rules) if absorbed else survivor
    return [fold_events(merged, survivor_id, [merge], rules), merged_stub(absorbed, absorbed_id, survivor_id, merge)]
