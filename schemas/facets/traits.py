"""Traits: every trait of identify calls (and of the ``context.traits`` other calls repeat), where each
value came from, and the demographics derived from them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField, computed, stored


class TraitSource(BaseModel):
    """Where a trait's current value came from: the latest value by event time wins."""

    model_config = ConfigDict(extra="forbid")

    source: str
    at: AwareDatetime


class Demographics(BaseModel):
    """Derived from the traits on every identify: the age as a band, gender, where the customer lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    age_band: str | None = Field(None, description='"under 18", "18-24", "25-34", … "55-64", "65+".')
    gender: str | None = Field(None, description='"female", "male", or the value given, lower-cased.')
    city: str | None = None
    region: str | None = None
    country: str | None = None


class TraitsFacet(BaseModel):
    traits: dict[str, Any] = Field(default_factory=dict)
    trait_sources: dict[str, TraitSource] = Field(
        default_factory=dict, description="Per trait: the source and time of its value (see survivorship)."
    )
    traits_refused: list[str] = Field(
        default_factory=list, description="Traits not kept: the profile already held the most it may."
    )
    demographics: Demographics = Field(default_factory=Demographics)


def _number(value: Any) -> Decimal | int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


@computed("demographics")
def age_band(p: TraitsFacet) -> str | None:
    return p.demographics.age_band


@computed("demographics")
def gender(p: TraitsFacet) -> str | None:
    return p.demographics.gender


@computed("demographics", "traits")
def city(p: TraitsFacet) -> str | None:
    return p.demographics.city or p.traits.get("city")


@computed("demographics")
def region(p: TraitsFacet) -> str | None:
    return p.demographics.region


@computed("demographics", "traits")
def country(p: TraitsFacet) -> str | None:
    return p.demographics.country or p.traits.get("country")


@computed("traits")
def age(p: TraitsFacet) -> Decimal | int | None:
    return _number(p.traits.get("age"))


@computed("traits")
def birthday(p: TraitsFacet) -> datetime | None:
    """The ``birthday`` trait (Segment's; an ISO date, or a time whose date counts) at midnight UTC:
    ``years_since(birthday)`` is the age, and advances on the birthday with no event."""
    value = p.traits.get("birthday")
    try:
        day = date.fromisoformat(value[:10]) if isinstance(value, str) else None
    except ValueError:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None


@computed("traits")
def children(p: TraitsFacet) -> Decimal | int | None:
    return _number(p.traits.get("children"))


SEGMENT_FIELDS: list[SegmentField] = [age_band, gender, city, region, country, age, birthday, children]
SEGMENT_FIELDS += stored(TraitsFacet, "traits")  # each value as its JSON type: text, number, bool…
