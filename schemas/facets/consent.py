"""Consent: the customer's latest decision per channel and purpose."""

from __future__ import annotations

from typing import TypedDict

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import computed


class ConsentState(BaseModel):
    """The customer's latest consent decision for one channel and purpose (latest by event time wins; a
    withdrawal wins a tie)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    granted: bool
    at: AwareDatetime
    source: str
    method: str | None = None


class ConsentFacet(BaseModel):
    consent: dict[str, dict[str, ConsentState]] = Field(
        default_factory=dict, description="Channel -> purpose -> the latest decision."
    )


class ChannelConsent(TypedDict):
    """Per channel: whether its marketing decision (or, without one, any decision) grants."""

    email: bool
    sms: bool
    phone: bool
    push: bool
    post: bool


CHANNELS = tuple(ChannelConsent.__annotations__)


@computed("consent")
def consent(p: ConsentFacet) -> ChannelConsent:
    granted = dict.fromkeys(CHANNELS, False)
    for channel, purposes in p.consent.items():
        decision = purposes.get("marketing") or next(iter(purposes.values()), None)
        if channel in granted and decision is not None:
            granted[channel] = decision.granted
    return granted  # type: ignore[return-value]  # every channel of ChannelConsent: built from CHANNELS


SEGMENT_FIELDS = [consent]
