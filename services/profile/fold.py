"""Pure folding of events into a profile: ``fold_events(profile, profile_id, events, rules) -> profile``.

Deterministic (no clock: times come from the events), so a replay of the same events yields the same
profile, version included. The fold itself only counts the event and runs what the facets declare
(``services.profile.facets.registry``): the folds of every event (identifiers, context), then the folds
of the event's type. The rules of every field are in ``docs/profile.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, get_args, get_origin

from schemas.events import Event
from schemas.profile import Profile
from services.profile.facets.registry import EVERY, FACETS, FOLDS
from services.profile.policy import DEFAULT_RULES, FoldRules


def new_profile(profile_id: str, first: Event) -> Profile:
    return Profile(profile_id=profile_id, created_at=first.occurred_at, updated_at=first.occurred_at)


def fold_events(
    profile: Profile | None, profile_id: str, events: Iterable[Event], rules: FoldRules = DEFAULT_RULES
) -> Profile:
    work = upgraded(working_copy(profile), rules) if profile is not None else None
    for event in events:
        if work is None:
            work = new_profile(profile_id, event)
        fold_event(work, event, rules)
    if work is None:
        raise ValueError("fold_events needs a profile or at least one event")
    return work


def fold_event(p: Profile, e: Event, rules: FoldRules = DEFAULT_RULES) -> None:
    """Apply one event to the working copy ``p`` (mutated in place; callers go through fold_events)."""
    p.version += 1
    p.updated_at = max(p.updated_at, e.occurred_at)
    for fold in EVERY:
        fold(p, e, rules)
    for fold in FOLDS.get(type(e), ()):
        fold(p, e, rules)


def working_copy(p: Profile) -> Profile:
    """A copy safe to mutate: the folds mutate only the profile's containers, one level deep (everything
    nested in them is frozen or replaced, never changed), so copying those is enough and much cheaper
    than a deep copy. A dict of lists or dicts is copied two levels deep (the folds add to
    ``identifiers[kind]``, ``consent[channel]``). Which fields are which is read once from the model."""
    fields = p.__dict__
    update = {name: fields[name].copy() for name in _SHALLOW}
    for name in _NESTED:
        update[name] = {key: inner.copy() for key, inner in fields[name].items()}
    return p.model_copy(update=update)


def _depth(annotation: Any) -> int:
    """How deep a fold may mutate a field of this type: 0 for a value never mutated in place, 1 for a
    list or dict, 2 for a dict of lists or dicts."""
    origin = get_origin(annotation)
    if origin is list:
        return 1
    if origin is not dict:
        return 0
    return 2 if get_origin(get_args(annotation)[1]) in (list, dict) else 1


_SHALLOW = tuple(name for name, field in Profile.model_fields.items() if _depth(field.annotation) == 1)
_NESTED = tuple(name for name, field in Profile.model_fields.items() if _depth(field.annotation) == 2)


def upgraded(p: Profile, rules: FoldRules = DEFAULT_RULES) -> Profile:
    """The profile (mutated in place) with what an older crmhub did not store filled in by the facets."""
    for facet in FACETS:
        if facet.upgrade is not None:
            facet.upgrade(p, rules)
    return p
