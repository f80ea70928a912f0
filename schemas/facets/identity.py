"""Identity: the identifiers seen on a person's events (user id, anonymous ids, e-mail, phone, loyalty id,
social handles), each with when it was first and last seen."""

from __future__ import annotations

from typing import NamedTuple

from pydantic import AwareDatetime, BaseModel, Field

from schemas.facets.base import SegmentField


class Seen(NamedTuple):
    """When an identifier was first and last seen on an event (event times); a pair ``[first, last]`` in
    JSON (a named tuple: the fold makes one per identifier per event, so it must be cheap)."""

    first: AwareDatetime
    last: AwareDatetime


class IdentityFacet(BaseModel):
    identifiers: dict[str, list[str]] = Field(default_factory=dict)
    identifier_seen: dict[str, dict[str, Seen]] = Field(
        default_factory=dict, description="Per kind and value of ``identifiers``: first and last seen."
    )


SEGMENT_FIELDS: list[SegmentField] = []  # identifiers are personal data: segments do not read them
