"""Complaints and cases: social mentions that complain, waiting for support's first response, and how
fast support answers."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField, computed, stored


class OpenComplaint(BaseModel):
    """A social mention that is a complaint, waiting for support's reply."""

    model_config = ConfigDict(extra="forbid")

    message_id: str
    platform: str
    handle: str
    text: str
    sentiment: float | None = None
    at: AwareDatetime


class ComplaintAnswer(BaseModel):
    """A complaint answered (or a reply seen before its complaint): when, and when the complaint was made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answered_at: AwareDatetime
    complained_at: AwareDatetime | None = Field(None, description="None: the complaint itself has not arrived.")


class ComplaintsFacet(BaseModel):
    complaints_total: int = 0
    open_complaints: list[OpenComplaint] = Field(default_factory=list, description="Complaints not yet answered.")
    complaints_answered: int = 0
    answered_complaints: dict[str, ComplaintAnswer] = Field(
        default_factory=dict, description="The latest answers by message id (replies before their complaint too)."
    )
    last_first_response_s: float | None = Field(None, description="Seconds to the first response, last complaint.")
    avg_first_response_s: float | None = Field(None, description="Mean seconds to the first response.")
    first_response_total_s: float = Field(0.0, description="Sum of the first-response times averaged.")

    @property
    def complaints_open(self) -> int:
        return len(self.open_complaints)


@computed("open_complaints")
def open_complaints(p: ComplaintsFacet) -> int:
    """The number of complaints waiting for a response."""
    return len(p.open_complaints)


SEGMENT_FIELDS: list[SegmentField] = [open_complaints]
SEGMENT_FIELDS += stored(ComplaintsFacet, "complaints_total", "complaints_answered")
