"""Pure profile merging: a ``profile.merged`` event folds the absorbed profile into the survivor.

What remains of the absorbed profile is a stub: empty, with ``merged_into`` naming the survivor. Events
stamped with the absorbed id that arrive later (they travel on its partition, so they may overtake the
merge or lag behind it) go to the profile it was merged into, in as many steps as there were merges.
A merge seen again (a redelivery) finds both ids naming the same profile and changes nothing but the
version, like any duplicate event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.events import Event, ProfileMerged
from schemas.profile import (
    Cart,
    ComplaintAnswer,
    ConsentState,
    CurrencyTotals,
    Loyalty,
    OpenComplaint,
    OrderRecord,
    Profile,
    Seen,
    ViewedProduct,
)
from services.profile.context import merge_context
from services.profile.fold import (
    MAX_AFFINITY,
    MAX_ANSWERED,
    MAX_IDS_PER_KIND,
    MAX_RECENT_ORDERS,
    MAX_RECENT_VIEWS,
    _apply_refund,
    _per_order,
    _top,
    fold_events,
    new_profile,
    preferred_method,
    remember_failures,
    upgraded,
)
from services.profile.groups import merge_groups
from services.profile.policy import DEFAULT_RULES, FoldRules
from services.profile.traits import merge_traits

_NEVER = datetime.min.replace(tzinfo=UTC)


def merge_profiles(survivor: Profile, absorbed: Profile, rules: FoldRules = DEFAULT_RULES) -> Profile:
    """The survivor with the absorbed profile's history: identifiers (first seen the earlier, last seen
    the later), orders and open complaints united, counters and amounts summed (per currency), each
    trait's newer value winning (the survivor's on a tie), each consent's later decision, the newer cart,
    the later payment failure. Derived fields (demographics, average order value, top categories and
    products, preferred payment method, loyalty tier) are computed again from the merged values.

    An order both profiles counted (one order delivered twice under two event ids before the merge) is
    counted once when both still remember it (``recent_orders``); older ones stay in both sums. The RFM
    scores are the survivor's (else the absorbed's) until the next refresh.
    """
    survivor = upgraded(survivor.model_copy(update={"totals_by_currency": dict(survivor.totals_by_currency)}), rules)
    absorbed = upgraded(absorbed.model_copy(update={"totals_by_currency": dict(absorbed.totals_by_currency)}), rules)
    counted = set(survivor.order_ids)
    refunds = set(survivor.refund_ids)
    merged = survivor.model_copy(
        update={
            "version": survivor.version + absorbed.version,
            "created_at": min(survivor.created_at, absorbed.created_at),
            "updated_at": max(survivor.updated_at, absorbed.updated_at),
            "identifiers": (ids := _union_identifiers(survivor.identifiers, absorbed.identifiers)),
            "identifier_seen": _union_seen(ids, survivor.identifier_seen, absorbed.identifier_seen),
            **merge_traits(survivor, absorbed),
            "context": merge_context(survivor.context, absorbed.context),
            "groups": merge_groups(survivor.groups, absorbed.groups),
            "consent": _merge_consent(survivor.consent, absorbed.consent),
            "order_count": survivor.order_count + absorbed.order_count,
            "web_orders": survivor.web_orders + absorbed.web_orders,
            "pos_orders": survivor.pos_orders + absorbed.pos_orders,
            "cancelled_orders": survivor.cancelled_orders + absorbed.cancelled_orders,
            "currency": survivor.currency or absorbed.currency,
            "totals_by_currency": _sum_totals(survivor.totals_by_currency, absorbed.totals_by_currency),
            "first_order_at": min(filter(None, (survivor.first_order_at, absorbed.first_order_at)), default=None),
            "last_order_at": max(filter(None, (survivor.last_order_at, absorbed.last_order_at)), default=None),
            "order_ids": survivor.order_ids + [o for o in absorbed.order_ids if o not in counted],
            "recent_orders": {**absorbed.recent_orders, **survivor.recent_orders},
            "refund_ids": survivor.refund_ids + [r for r in absorbed.refund_ids if r not in refunds],
            "refund_count": survivor.refund_count + absorbed.refund_count,
            "return_count": survivor.return_count + absorbed.return_count,
            "category_spend": _sum_spend(survivor.category_spend, absorbed.category_spend),
            "product_spend": _sum_spend(survivor.product_spend, absorbed.product_spend),
            "product_views": survivor.product_views + absorbed.product_views,
            "recent_views": _merge_views(survivor.recent_views, absorbed.recent_views),
            "cart": absorbed.cart if _cart_time(absorbed.cart) > _cart_time(survivor.cart) else survivor.cart,
            "complaints_total": survivor.complaints_total + absorbed.complaints_total,
            "complaints_answered": survivor.complaints_answered + absorbed.complaints_answered,
            "answered_complaints": _merge_answers(survivor.answered_complaints, absorbed.answered_complaints),
            "first_response_total_s": survivor.first_response_total_s + absorbed.first_response_total_s,
            "last_first_response_s": _first_set(survivor.last_first_response_s, absorbed.last_first_response_s),
            "payment_failures": survivor.payment_failures + absorbed.payment_failures,
            **_later_failure(survivor, absorbed),
            "recent_payment_failures": remember_failures(
                survivor.recent_payment_failures, absorbed.recent_payment_failures
            ),
            "chargebacks": survivor.chargebacks + absorbed.chargebacks,
            "payment_methods": dict(Counter(survivor.payment_methods) + Counter(absorbed.payment_methods)),
            "loyalty": Loyalty(
                earned=survivor.loyalty.earned + absorbed.loyalty.earned,
                redeemed=survivor.loyalty.redeemed + absorbed.loyalty.redeemed,
            ),
            "rfm": survivor.rfm or absorbed.rfm,
        }
    )
    _count_shared_orders_once(merged, survivor.recent_orders, absorbed.recent_orders, rules)
    _answer_open_complaints(merged, survivor, absorbed)
    _derive(merged, rules)
    return merged


def _count_shared_orders_once(
    merged: Profile, ours: dict[str, OrderRecord], theirs: dict[str, OrderRecord], rules: FoldRules
) -> None:
    """An order both profiles remember: counted by both, the absorbed profile's copy is taken out; counted
    by one while refunds for it wait in the other, those refunds apply now."""
    for key in ours.keys() & theirs.keys():
        mine, dup = ours[key], theirs[key]
        if mine.amount is None and dup.amount is not None:
            mine, dup = dup, mine  # the one that knows the order stays
        merged.recent_orders[key] = mine
        if mine.amount is None or mine.cancelled or dup.cancelled:
            continue
        if dup.amount is None:
            if dup.refunded or dup.whole_refund:
                _apply_refund(merged, key, mine, None if dup.whole_refund else dup.refunded, (), rules)
            continue
        merged.order_count -= 1
        if dup.channel == "web":
            merged.web_orders -= 1
        else:
            merged.pos_orders -= 1
        t = merged.totals_by_currency[dup.currency]
        spent, refunded = t.spent - dup.amount, t.refunded - dup.refunded
        merged.totals_by_currency[dup.currency] = CurrencyTotals(
            orders=t.orders - 1, spent=spent, refunded=refunded, net=spent - refunded
        )
        merged.loyalty = Loyalty(earned=merged.loyalty.earned - dup.points, redeemed=merged.loyalty.redeemed)
    if len(merged.recent_orders) > MAX_RECENT_ORDERS:
        newest = sorted(merged.recent_orders, key=lambda k: (merged.recent_orders[k].at, k))[-MAX_RECENT_ORDERS:]
        merged.recent_orders = {k: merged.recent_orders[k] for k in newest}


def _answer_open_complaints(merged: Profile, survivor: Profile, absorbed: Profile) -> None:
    """Open complaints united by message (one open in both counts once); one the other profile holds an
    answer for is answered now (and, when that profile counted the complaint too, counts once)."""
    still_open: dict[str, OpenComplaint] = {}
    for complaint in survivor.open_complaints + absorbed.open_complaints:
        answer = merged.answered_complaints.get(complaint.message_id)
        if complaint.message_id in still_open or (answer is not None and answer.complained_at is not None):
            merged.complaints_total -= 1  # both profiles counted it
        elif answer is not None:  # the other profile saw only the reply
            seconds = max((answer.answered_at - complaint.at).total_seconds(), 0.0)
            merged.complaints_answered += 1
            merged.first_response_total_s += seconds
            merged.last_first_response_s = seconds
            merged.answered_complaints[complaint.message_id] = answer.model_copy(update={"complained_at": complaint.at})
        else:
            still_open[complaint.message_id] = complaint
    merged.open_complaints = list(still_open.values())


def _derive(p: Profile, rules: FoldRules) -> None:
    """The fields computed from others: money of the profile's currency, tops, preferences, averages, tier."""
    t = p.totals_by_currency.get(p.currency) if p.currency else None
    if p.currency and t is not None:
        p.total_spent, p.refunded_total, p.net_revenue, p.lifetime_value = t.spent, t.refunded, t.net, t.net
        p.average_order_value = _per_order(t.spent, t.orders, p.currency)
    p.top_categories, p.top_products = _top(p.category_spend), _top(p.product_spend)
    p.preferred_payment_method = preferred_method(p.payment_methods)
    p.avg_first_response_s = p.first_response_total_s / p.complaints_answered if p.complaints_answered else None
    earned, redeemed = p.loyalty.earned, p.loyalty.redeemed
    p.loyalty = Loyalty(earned=earned, redeemed=redeemed, balance=earned - redeemed, tier=rules.tier_for(earned))


def _union_seen(
    ids: dict[str, list[str]], first: dict[str, dict[str, Seen]], second: dict[str, dict[str, Seen]]
) -> dict[str, dict[str, Seen]]:
    united: dict[str, dict[str, Seen]] = {}
    for kind, values in ids.items():
        mine, theirs = first.get(kind, {}), second.get(kind, {})
        per_kind = {}
        for value in values:
            a, b = mine.get(value), theirs.get(value)
            if a and b:
                per_kind[value] = Seen(first=min(a.first, b.first), last=max(a.last, b.last))
            elif a or b:
                per_kind[value] = a or b  # type: ignore[assignment]
        if per_kind:
            united[kind] = per_kind
    return united


def _merge_consent(
    first: dict[str, dict[str, ConsentState]], second: dict[str, dict[str, ConsentState]]
) -> dict[str, dict[str, ConsentState]]:
    """Per channel and purpose the later decision; on a tie a withdrawal."""
    merged = {channel: dict(purposes) for channel, purposes in first.items()}
    for channel, purposes in second.items():
        mine = merged.setdefault(channel, {})
        for purpose, theirs in purposes.items():
            ours = mine.get(purpose)
            if ours is None or (theirs.at, not theirs.granted) > (ours.at, not ours.granted):
                mine[purpose] = theirs
    return merged


def _sum_totals(first: dict[str, CurrencyTotals], second: dict[str, CurrencyTotals]) -> dict[str, CurrencyTotals]:
    merged = dict(first)
    for currency, t in second.items():
        mine = merged.get(currency)
        if mine is None:
            merged[currency] = t
            continue
        spent, refunded = mine.spent + t.spent, mine.refunded + t.refunded
        merged[currency] = CurrencyTotals(
            orders=mine.orders + t.orders, spent=spent, refunded=refunded, net=spent - refunded
        )
    return merged


def _sum_spend(first: dict[str, Decimal], second: dict[str, Decimal]) -> dict[str, Decimal]:
    merged = dict(first)
    for key, amount in second.items():
        merged[key] = merged.get(key, Decimal(0)) + amount
    if len(merged) > MAX_AFFINITY:
        kept = sorted(merged, key=lambda k: (-merged[k], k))[:MAX_AFFINITY]
        merged = {k: merged[k] for k in kept}
    return merged


def _merge_views(first: list[ViewedProduct], second: list[ViewedProduct]) -> list[ViewedProduct]:
    newest: dict[str, ViewedProduct] = {}
    for view in first + second:
        known = newest.get(view.product_id)
        if known is None or view.at > known.at:
            newest[view.product_id] = view
    return sorted(newest.values(), key=lambda v: v.at, reverse=True)[:MAX_RECENT_VIEWS]


def _merge_answers(first: dict[str, ComplaintAnswer], second: dict[str, ComplaintAnswer]) -> dict[str, ComplaintAnswer]:
    merged = {**second, **first}
    return dict(list(merged.items())[-MAX_ANSWERED:])


def _later_failure(survivor: Profile, absorbed: Profile) -> dict[str, Any]:
    ours, theirs = survivor.last_payment_failure_at, absorbed.last_payment_failure_at
    later = absorbed if theirs is not None and (ours is None or theirs > ours) else survivor
    return {
        "last_payment_failure_at": later.last_payment_failure_at,
        "last_payment_failure_reason": later.last_payment_failure_reason
        or survivor.last_payment_failure_reason
        or absorbed.last_payment_failure_reason,
    }


def _first_set(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


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


def fold_batch(
    current: Mapping[str, Profile], routed: Iterable[tuple[str, Event]], rules: FoldRules = DEFAULT_RULES
) -> dict[str, Profile]:
    """Fold (profile id, event) pairs in order into ``current`` (the profiles they name, with the ones
    merged profiles point to); return the profiles changed, stubs of absorbed ones included."""
    work = dict(current)
    changed: dict[str, Profile] = {}
    pending: dict[str, list[Event]] = {}
    for profile_id, event in routed:
        if isinstance(event, ProfileMerged):
            _fold_pending(work, changed, pending, rules)
            for profile in _merge(work, event, rules):
                work[profile.profile_id] = changed[profile.profile_id] = profile
        else:
            pending.setdefault(survivor_of(work, profile_id), []).append(event)
    _fold_pending(work, changed, pending, rules)
    return changed


def _fold_pending(
    work: dict[str, Profile], changed: dict[str, Profile], pending: dict[str, list[Event]], rules: FoldRules
) -> None:
    for profile_id, events in pending.items():
        work[profile_id] = changed[profile_id] = fold_events(work.get(profile_id), profile_id, events, rules)
    pending.clear()


def _merge(work: Mapping[str, Profile], merge: ProfileMerged, rules: FoldRules) -> list[Profile]:
    """The survivor with the absorbed profile merged in and the merge event folded, and the stub."""
    survivor_id = survivor_of(work, merge.properties.survivor_id)
    absorbed_id = survivor_of(work, merge.properties.absorbed_id)
    survivor = work.get(survivor_id) or new_profile(survivor_id, merge)
    if absorbed_id == survivor_id:  # merged already
        return [fold_events(survivor, survivor_id, [merge], rules)]
    absorbed = work.get(absorbed_id)
    merged = merge_profiles(survivor, absorbed, rules) if absorbed else survivor
    return [fold_events(merged, survivor_id, [merge], rules), merged_stub(absorbed, absorbed_id, survivor_id, merge)]
