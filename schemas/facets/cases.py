"""Service cases from every channel: the cases open, the latest notes, and how fast support handles them
(time to the first response, time to close)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField, computed, stored


class ServiceCase(BaseModel):
    """A case as its events have told it so far; ``opened_at`` None: its notes or its closing overtook
    the opening."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_id: str
    channel: str | None = None
    category: str | None = None
    priority: str | None = Field(None, description="The helpdesk's (high, normal, low); None: crmhub's.")
    subject: str = ""
    order_id: str | None = None
    product_id: str | None = None
    message_id: str | None = Field(None, description="The social complaint it is about (timed by that complaint).")
    opened_at: AwareDatetime | None = None
    first_response_at: AwareDatetime | None = Field(None, description="The first reply to the customer, or closing.")
    closed_at: AwareDatetime | None = None
    first_response_s: float | None = Field(None, description="Seconds from opening to first response, once known.")
    handling_s: float | None = Field(None, description="Seconds from opening to closing, once both are known.")


class CaseNote(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    case_id: str
    note_id: str
    agent: str | None = Field(None, description="None: the customer's own message.")
    reply: bool = False
    text: str
    at: AwareDatetime


class CasesFacet(BaseModel):
    open_cases: list[ServiceCase] = Field(default_factory=list, description="Cases not closed, oldest first.")
    closed_cases: list[ServiceCase] = Field(
        default_factory=list, description="The latest cases closed (and closings waiting for their opening)."
    )
    case_notes: list[CaseNote] = Field(default_factory=list, description="The latest notes of any case, oldest first.")
    cases_opened: int = 0
    cases_responded: int = Field(0, description="Cases whose time to first response is known.")
    cases_closed: int = Field(0, description="Cases whose time to close is known.")
    case_response_total_s: float = 0.0
    case_handling_total_s: float = 0.0
    avg_case_response_s: float | None = Field(None, description="Mean seconds from opening to first response.")
    avg_case_handling_s: float | None = Field(None, description="Mean seconds from opening to closing.")


def opened(p: CasesFacet) -> list[ServiceCase]:
    """The open cases whose opening has arrived."""
    return [c for c in p.open_cases if c.opened_at is not None]


@computed("open_cases")
def open_case_count(p: CasesFacet) -> int:
    return len(opened(p))


@computed("open_cases")
def unanswered_case_count(p: CasesFacet) -> int:
    """Open cases with no first response yet: the ones the SLA clock runs for."""
    return sum(1 for c in opened(p) if c.first_response_at is None)


@computed("open_cases", "closed_cases")
def last_case_opened_at(p: CasesFacet) -> datetime | None:
    return max((c.opened_at for c in [*p.open_cases, *p.closed_cases] if c.opened_at is not None), default=None)


SEGMENT_FIELDS: list[SegmentField] = [open_case_count, unanswered_case_count, last_case_opened_at]
SEGMENT_FIELDS += stored(CasesFacet, "cases_opened", "cases_closed", "avg_case_response_s", "avg_case_handling_s")
