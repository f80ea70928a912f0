"""Pure identity resolution: which profile does an event belong to, and which new links does it make.

Kinds are tried in priority order; the first identifier already known names the profile. An event whose
identifiers are all new starts a profile whose id is derived from its strongest identifier, so every
ingest instance (and every replay) picks the same id.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PRIORITY = ("customer_id", "email", "phone", "loyalty_id", "anonymous_id")
_NAMESPACE = uuid.UUID("6f1c0b0e-5c1a-4d8e-9a55-63726d687562")

IdKey = tuple[str, str]


@dataclass(frozen=True)
class Resolution:
    profile_id: str
    new_links: tuple[IdKey, ...]


def mint_profile_id(kind: str, value: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{value}"))


def resolve_identity(identifiers: Mapping[str, str], known: Mapping[IdKey, str]) -> Resolution:
    ordered = [(kind, identifiers[kind]) for kind in PRIORITY if identifiers.get(kind)]
    if not ordered:
        raise ValueError("an event with no identifiers cannot be resolved")
    linked = [known[key] for key in ordered if key in known]
    profile_id = linked[0] if linked else mint_profile_id(*ordered[0])
    return Resolution(profile_id, tuple(key for key in ordered if key not in known))


def resolve_batch(batch: Sequence[Mapping[str, str]], known: Mapping[IdKey, str]) -> tuple[list[str], dict[IdKey, str]]:
    """Resolve events in order, each seeing the links the earlier ones made; return ids and new links."""
    seen = dict(known)
    new_links: dict[IdKey, str] = {}
    profile_ids = []
    for identifiers in batch:
        res = resolve_identity(identifiers, seen)
        for key in res.new_links:
            seen[key] = new_links[key] = res.profile_id
        profile_ids.append(res.profile_id)
    return profile_ids, new_links
