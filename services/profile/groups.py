"""The groups facet: the accounts and organisations a person belongs to (Segment ``group`` calls).

Per group id, the traits of the latest group call by event time (a call's traits replace the older
ones as a whole: a group call describes the group as it is). A person belongs to at most ``MAX_GROUPS``
groups; past that, the group seen least recently goes first.
"""

from __future__ import annotations

from schemas.events import Group
from schemas.profile import GroupMembership, Profile

MAX_GROUPS = 20


def fold_group(p: Profile, e: Group) -> None:
    known = p.groups.get(e.group_id)
    if known is not None and known.at > e.occurred_at:
        return
    traits = e.traits.model_dump(exclude_none=True)
    p.groups = _capped({**p.groups, e.group_id: GroupMembership(traits=traits, at=e.occurred_at)})


Groups = dict[str, GroupMembership]


def merge_groups(survivor: Groups, absorbed: Groups) -> Groups:
    """Both profiles' groups; a group both know keeps its later call (the survivor's on a tie)."""
    merged = dict(absorbed)
    for group_id, membership in survivor.items():
        theirs = merged.get(group_id)
        if theirs is None or membership.at >= theirs.at:
            merged[group_id] = membership
    return _capped(merged)


def _capped(groups: Groups) -> Groups:
    if len(groups) <= MAX_GROUPS:
        return groups
    newest = sorted(groups.items(), key=lambda item: item[1].at, reverse=True)[:MAX_GROUPS]
    return dict(newest)
