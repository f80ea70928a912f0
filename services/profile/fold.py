"""Pure folding of events into a profile: ``fold_events(profile, profile_id, events, rules) -> profile``.

Deterministic (no clock: times come from the events), so a replay of the same events yields the same
profile, version included. The fold itself only counts the event and runs what the facets declare
(``services.profile.facets.registry``): the folds of every event (identifiers, context), then the folds
of the event's type. The rules of every field are in ``docs/profile.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    than a deep copy. Which fields are containers, and how deep, is read once from the model."""
    return p.model_copy(update={name: copy(getattr(p, name)) for name, copy in _COPIERS})


def _copier(annotation: Any) -> Callable[[Any], Any] | None:
    """How to copy a field of this type for a fold: a list or dict by one level, a dict of lists or dicts
    by two (the folds add to ``identifiers[kind]``, ``consent[channel]``); None for a value never mutated."""
    origin = get_origin(annotation)
    if origin is list:
        return list
    if origin is not dict:
        return None
    inner = get_origin(get_args(annotation)[1])
    if inner in (list, dict):
        return lambda d: {k: inner(v) for k, v in d.items()}
    return dict


_COPIERS = tuple(
    (name, copy) for name, field in Profile.model_fields.items() if (copy := _copier(field.annotation)) is not None
)


def upgraded(p: Profile, rules: FoldRules = DEFAULT_RULES) -> Profile:
    """The profile (mutated in place) with what an older crmhub did not store filled in by the facets."""
    for facet in FACETS:
        if facet.upgrade is not None:
            facet.upgrade(p, rules)
    return p
