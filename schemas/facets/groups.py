"""Groups: the accounts and organisations a person belongs to (Segment ``group`` calls), with their traits."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import computed


class GroupMembership(BaseModel):
    """An account or organisation the person belongs to (Segment ``group`` calls), with its traits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    traits: dict[str, Any] = Field(default_factory=dict)
    at: AwareDatetime = Field(description="Event time of the latest group call: its traits are these.")


class GroupsFacet(BaseModel):
    groups: dict[str, GroupMembership] = Field(default_factory=dict, description="By group id (``group`` calls).")


@computed("groups")
def groups(p: GroupsFacet) -> tuple[str, ...]:
    """The ids of the groups the person belongs to."""
    return tuple(p.groups)


SEGMENT_FIELDS = [groups]
