"""The traits facet: every trait of identify calls and of the ``context.traits`` other calls repeat, and
the demographics derived from them.

Each trait keeps its latest value by event time (or what ``FoldRules.survivorship`` says for it), with
the source and time of that value in ``trait_sources``. Email and phone are identifiers, kept with the
identifiers, not here. A profile holds at most ``MAX_PROFILE_TRAITS`` traits: a new trait over that is not
stored, and its name goes in ``traits_refused`` so the loss is visible (each event's traits are already
bounded by ``schemas.events.check_trait_limits`` at ingest).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.events import MAX_TRAITS, ContextTraits, Event, Identify, Traits
from schemas.profile import Demographics, Profile, TraitSource
from services.profile.facets import Facet
from services.profile.policy import FoldRules

MAX_PROFILE_TRAITS = MAX_TRAITS
MAX_REFUSED_NAMES = 20  # names of traits refused for lack of room that the profile remembers
IDENTIFIER_TRAITS = frozenset({"email", "phone"})
_ADDRESS_TRAITS = {"city": ("city",), "region": ("region", "state"), "country": ("country",)}
AGE_BANDS = ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64"))
_GENDERS = {"f": "female", "female": "female", "woman": "female", "w": "female"}
_GENDERS |= {"m": "male", "male": "male", "man": "male"}


def trait_values(traits: Traits | ContextTraits) -> dict[str, Any]:
    """Every trait given but the identifiers, strings trimmed and empty values left out; region also
    from ``state``, and city, region and country also from Segment's ``address`` trait."""
    values = {name: getattr(traits, name) for name in type(traits).model_fields} | (traits.model_extra or {})
    values.setdefault("city", None)
    values.setdefault("country", None)
    address: dict[str, Any] = values["address"] if isinstance(values.get("address"), dict) else {}
    if not isinstance(values.get("region"), str):
        values["region"] = values.get("state") if isinstance(values.get("state"), str) else None
    for trait, names in _ADDRESS_TRAITS.items():
        values[trait] = values[trait] or next((a for n in names if isinstance(a := address.get(n), str) and a), None)
    out = {}
    for name, value in values.items():
        if isinstance(value, str):
            value = value.strip()
        if name not in IDENTIFIER_TRAITS and value is not None and value != "":
            out[name] = value
    return out


def fold_identify(p: Profile, e: Identify, rules: FoldRules) -> None:
    fold_traits(p, trait_values(e.traits), e.source, e.occurred_at, rules)


def fold_context_traits(p: Profile, e: Event, rules: FoldRules) -> None:
    """The traits a call other than identify repeats in its context (``EventContext.traits``)."""
    if e.context is not None and e.context.traits is not None:
        fold_traits(p, trait_values(e.context.traits), e.source, e.occurred_at, rules)


def fold_traits(p: Profile, values: dict[str, Any], source: str, at: datetime, rules: FoldRules) -> None:
    """Per trait, the survivorship rule decides (default: latest by event time, so an older identify
    arriving late changes nothing newer)."""
    changed = False
    for name, value in values.items():
        known = p.trait_sources.get(name)
        if known is None and len(p.traits) >= MAX_PROFILE_TRAITS:
            _refuse(p, name)
            continue
        if rules.trait_wins(name, (source, at), (known.source, known.at) if known else None):
            p.traits[name] = value
            p.trait_sources[name] = TraitSource(source=source, at=at)
            changed = True
    if changed:
        p.demographics = demographics(p.traits)


def _refuse(p: Profile, name: str) -> None:
    if name not in p.traits_refused:
        p.traits_refused = [*p.traits_refused, name][-MAX_REFUSED_NAMES:]


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Each trait's newer value wins (the survivor's on a tie); the survivor's traits first when the two
    together hold more than MAX_PROFILE_TRAITS (the others are named in ``traits_refused``)."""
    traits, sources = dict(survivor.traits), dict(survivor.trait_sources)
    refused = list(survivor.traits_refused)
    for name, value in absorbed.traits.items():
        ours, theirs = sources.get(name), absorbed.trait_sources.get(name)
        if name not in traits and len(traits) >= MAX_PROFILE_TRAITS:
            refused.append(name)
        elif name not in traits or (theirs and ours and theirs.at > ours.at):
            traits[name] = value
            if theirs:
                sources[name] = theirs
    refused = [*refused, *(n for n in absorbed.traits_refused if n not in traits)]
    merged.traits, merged.trait_sources = traits, sources
    merged.traits_refused = list(dict.fromkeys(refused))[-MAX_REFUSED_NAMES:]
    merged.demographics = demographics(traits)


def demographics(traits: dict[str, Any]) -> Demographics:
    gender = traits.get("gender")
    return Demographics(
        age_band=age_band(traits.get("age")),
        gender=_GENDERS.get(gender.lower(), gender.lower()) if isinstance(gender, str) else None,
        city=_text(traits.get("city")),
        region=_text(traits.get("region")),
        country=_text(traits.get("country")),
    )


def age_band(age: Any) -> str | None:
    if not isinstance(age, int) or isinstance(age, bool):
        return None
    return next((band for below, band in AGE_BANDS if age < below), "65+")


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


FACET = Facet("traits", merge, folds={Identify: fold_identify}, every=fold_context_traits)
