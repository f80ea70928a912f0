"""What the services publish besides profiles: segment changes, alerts and dead letters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SegmentChange(_Model):
    """``crm.segments.v1``: a profile entered or left a segment."""

    segment: str
    profile_id: str
    change: Literal["entered", "exited"]
    at: AwareDatetime
    profile_version: int


AlertKind = Literal[
    "cart_abandoned",
    "browse_abandoned",
    "complaint",
    "complaint_escalated",
    "payment_failed",
    "invoice_overdue",
    "journey",
    # order fulfilment
    "delivery_failed",
    "delivery_late",
    # feedback: routed like complaints (crmhub.core.routing.ROUTED_LIKE)
    "detractor",
    "bad_review",
]
Channel = Literal["webhook", "slack", "email", "topic"]


class Alert(_Model):
    """``crm.alerts.v1``: something a person should act on. ``alert_id`` is deterministic per cause."""

    alert_id: str
    kind: AlertKind
    profile_id: str
    raised_at: AwareDatetime
    summary: str
    details: dict[str, Any] = {}
    internal: bool = False
    """For the team only (e.g. an abandoned cart of a customer who consented to no channel): routed only to
    the topic, the console and sinks marked ``internal`` in the routes file."""
    channel: Channel | None = None
    """A journey's message names the kind of sink it is for: of its kind's routed sinks, only those of
    this type (and the console) get it; ``topic``: none but the topic. None: every routed sink."""


class DeadLetter(_Model):
    """``crm.deadletter.v1``: an input that did not become an event, with why and where it came from."""

    reason: str
    location: str = ""
    source: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    request_id: str | None = None
    received_at: AwareDatetime
    original: str
    original_encoding: Literal["utf-8", "base64"] = "utf-8"
