"""The groups facet: the accounts and organisations a person belongs to (Segment ``group`` calls).

Per group id, the traits of the latest group call by event time (a call's traits replace the older
ones as a whole: a group call describes the group as it is). A person belongs to at most ``MAX_GROUPS``
groups; past that, the group seen least recently goes first.
"""

from __future__ import annotations

from schemas.events import Group
from schemas.profile import GroupMembership, Profile
from services.profile.facets import Facet
from services.profile.policy import FoldRules

MAX_GROUPS = 20


def fold_group(p: Profile, e: Group, rules: FoldRules) -> None:
    known = p.groups.get(e.group_id)
    if known is not None and known.at > e.occurred_at:
        return
    traits = e.traits.model_dump(exclude_none=True)
    p.groups = _capped({**p.groups, e.group_id: GroupMembership(traits=traits, at=e.occurred_at)})


Groups = dict[str, GroupMembership]


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Both profiles' groups; a group both know keeps its later call (the survivor's on a tie)."""
    united = dict(absorbed.groups)
    for group_id, membership in survivor.groups.items():
        theirs = united.get(group_id)
        if theirs is None or membership.at >= theirs.at:
            united[group_id] = membership
    merged.groups = _capped(united)


def _capped(groups: Groups) -> Groups:
    if len(groups) <= MAX_GROUPS:
        return groups
    newest = sorted(groups.items(), key=lambda item: item[1].at, reverse=True)[:MAX_GROUPS]
    return dict(newest)


FACET = Facet("groups", merge, folds={Group: fold_group})
