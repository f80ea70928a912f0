"""Consent: the customer's latest decision per channel and purpose."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

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


MARKETING = "marketing"
# the identifier kind that holds each channel's address (None: the channel needs no address on the profile)
ADDRESS_KINDS: dict[str, str | None] = {"email": "email", "sms": "phone", "phone": "phone", "push": None, "post": None}


def consented_contacts(profile: Mapping[str, Any]) -> dict[str, str | None]:
    """The channels a profile (its JSON document) may be marketed on, in the order of :data:`CHANNELS`,
    with their address: marketing consent granted and, for a channel that needs one, an address on the
    profile (the first identifier of its kind; None for push and post, which need none)."""
    consent = profile.get("consent") or {}
    identifiers = profile.get("identifiers") or {}
    found: dict[str, str | None] = {}
    for channel in CHANNELS:
        kind = ADDRESS_KINDS[channel]
        address = next(iter(identifiers.get(kind) or []), None) if kind else None
        if ((consent.get(channel) or {}).get(MARKETING) or {}).get("granted") and (kind is None or address):
            found[channel] = address
    return found


SEGMENT_FIELDS = [consent]
