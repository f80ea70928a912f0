"""Pure profile merging: a ``profile.merged`` event folds the absorbed profile into the survivor.

What remains of the absorbed profile is a stub: empty, with ``merged_into`` naming the survivor. Events
stamped with the absorbed id that arrive later (they travel on its partition, so they may overtake the
merge or lag behind it) go to the profile it was merged into, in as many steps as there were merges.
A merge seen again (a redelivery) finds both ids naming the same profile and changes nothing but the
version, like any duplicate event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from schemas.events import Event, ProfileMerged
from schemas.profile import Cart, Profile
from services.profile.fold import MAX_IDS_PER_KIND, fold_events, new_profile

_NEVER = datetime.min.replace(tzinfo=UTC)


def merge_profiles(survivor: Profile, absorbed: Profile) -> Profile:
    """The survivor with the absorbed profile's history: identifiers, orders and open complaints united,
    counters and amounts summed, each trait's newer value winning (the survivor's on a tie), the newer
    cart kept.

    An order both profiles counted (one order delivered twice under two event ids before the merge) is
    listed once, but its amount stays in both sums: the profile does not keep amounts per order.
    """
    counted = set(survivor.order_ids)
    open_ids = {c.message_id for c in survivor.open_complaints}
    return survivor.model_copy(
        update={
            "version": survivor.version + absorbed.version,
            "created_at": min(survivor.created_at, absorbed.created_at),
            "updated_at": max(survivor.updated_at, absorbed.updated_at),
            "identifiers": _union_identifiers(survivor.identifiers, absorbed.identifiers),
            **_merge_traits(survivor, absorbed),
            "order_count": survivor.order_count + absorbed.order_count,
            "web_orders": survivor.web_orders + absorbed.web_orders,
            "pos_orders": survivor.pos_orders + absorbed.pos_orders,
            "total_spent": survivor.total_spent + absorbed.total_spent,
            "currency": survivor.currency or absorbed.currency,
            "first_order_at": min(filter(None, (survivor.first_order_at, absorbed.first_order_at)), default=None),
            "last_order_at": max(filter(None, (survivor.last_order_at, absorbed.last_order_at)), default=None),
            "order_ids": survivor.order_ids + [o for o in absorbed.order_ids if o not in counted],
            "cart": absorbed.cart if _cart_time(absorbed.cart) > _cart_time(survivor.cart) else survivor.cart,
            "complaints_total": survivor.complaints_total + absorbed.complaints_total,
            "open_complaints": survivor.open_complaints
            + [c for c in absorbed.open_complaints if c.message_id not in open_ids],
            "payment_failures": survivor.payment_failures + absorbed.payment_failures,
            "last_payment_failure_reason": survivor.last_payment_failure_reason or absorbed.last_payment_failure_reason,
        }
    )


def _merge_traits(survivor: Profile, absorbed: Profile) -> dict[str, Any]:
    traits, sources = dict(survivor.traits), dict(survivor.trait_sources)
    for name, value in absorbed.traits.items():
        theirs, ours = absorbed.trait_sources.get(name), sources.get(name)
        if name not in traits or (theirs and ours and theirs.at > ours.at):
            traits[name] = value
            if theirs:
                sources[name] = theirs
    return {"traits": traits, "trait_sources": sources}


def _union_identifiers(first: dict[str, list[str]], second: dict[str, list[str]]) -> dict[str, list[str]]:
    united = {kind: list(values) for kind, values in first.items()}
    for kind, values in second.items():
        mine = united.setdefault(kind, [])
        mine += [v for v in values if v not in mine][: max(0, MAX_IDS_PER_KIND - len(mine))]
    return united


def _cart_time(cart: Cart) -> datetime:
    """When the cart last changed (filled or emptied); the earliest time for a cart never used."""
    return max(filter(None, (cart.updated_at, cart.cleared_at)), default=_NEVER)


def merged_stub(absorbed: Profile | None, absorbed_id: str, survivor_id: str, merge: ProfileMerged) -> Profile:
    """What is left of the absorbed profile (absent if its events have not arrived yet): a pointer."""
    created = absorbed.created_at if absorbed else merge.occurred_at
    return Profile(
        profile_id=absorbed_id,
        version=(absorbed.version if absorbed else 0) + 1,
        created_at=created,
        updated_at=max(absorbed.updated_at, merge.occurred_at) if absorbed else created,
        merged_into=survivor_id,
    )


def survivor_of(profiles: Mapping[str, Profile], profile_id: str) -> str:
    """The profile an id stands for now: itself, or the one it was merged into (in one or more steps)."""
    while (p := profiles.get(profile_id)) is not None and p.merged_into:
        profile_id = p.merged_into
    return profile_id


def fold_batch(current: Mapping[str, Profile], routed: Iterable[tuple[str, Event]]) -> dict[str, Profile]:
    """Fold (profile id, event) pairs in order into ``current`` (the profiles they name, with the ones
    merged profiles point to); return the profiles changed, stubs of absorbed ones included."""
    work = dict(current)
    changed: dict[str, Profile] = {}
    pending: dict[str, list[Event]] = {}
    for profile_id, event in routed:
        if isinstance(event, ProfileMerged):
            _fold_pending(work, changed, pending)
            for profile in _merge(work, event):
                work[profile.profile_id] = changed[profile.profile_id] = profile
        else:
            pending.setdefault(survivor_of(work, profile_id), []).append(event)
    _fold_pending(work, changed, pending)
    return changed


def _fold_pending(work: dict[str, Profile], changed: dict[str, Profile], pending: dict[str, list[Event]]) -> None:
    for profile_id, events in pending.items():
        work[profile_id] = changed[profile_id] = fold_events(work.get(profile_id), profile_id, events)
    pending.clear()


def _merge(work: Mapping[str, Profile], merge: ProfileMerged) -> list[Profile]:
    """The survivor with the absorbed profile merged in and the merge event folded, and the stub."""
    survivor_id = survivor_of(work, merge.properties.survivor_id)
    absorbed_id = survivor_of(work, merge.properties.absorbed_id)
    survivor = work.get(survivor_id) or new_profile(survivor_id, merge)
    if absorbed_id == survivor_id:  # merged already
        return [fold_events(survivor, survivor_id, [merge])]
    absorbed = work.get(absorbed_id)
    merged = merge_profiles(survivor, absorbed) if absorbed else survivor
    return [fold_events(merged, survivor_id, [merge]), merged_stub(absorbed, absorbed_id, survivor_id, merge)]
