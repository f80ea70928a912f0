"""The fold and merge rules of each facet of the profile (``schemas.facets`` holds their models).

A facet module declares a :class:`Facet`: the event types it folds (one function each), what it folds
from every event (``every``), how it merges two profiles' values of its fields, and how it upgrades a
profile stored before a field existed. :data:`FACETS` is the profile; ``services.profile.fold`` and
``services.profile.merge`` only run what the facets declare. Adding a domain is adding a facet module
here (and its model in ``schemas.facets``) and listing it in :data:`FACETS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.events import Envelope
from schemas.profile import Profile
from services.profile.policy import FoldRules

Fold = Callable[[Profile, Any, FoldRules], None]  # (working profile, event of the declared type, rules)
Merge = Callable[[Profile, Profile, Profile, FoldRules], None]  # (merged, survivor, absorbed, rules)
Upgrade = Callable[[Profile, FoldRules], None]


@dataclass(frozen=True)
class Facet:
    """One kind of fact: the fields it owns are set only by its own folds and merge.

    ``merge`` sets the facet's fields on ``merged`` (a copy of the survivor, every facet before this one
    merged already) from the survivor's and the absorbed profile's values, derived fields included."""

    name: str
    merge: Merge
    folds: Mapping[type[Envelope], Fold] = field(default_factory=dict)
    every: Fold | None = None  # folded from every event, before the event's own folds
    upgrade: Upgrade | None = None  # fills fields a profile stored by an older crmhub lacks (in place)
