"""Pure abandonment rules: a cart with items and no order, or viewed products with no cart and no order,
for longer than a delay. ``pending_*`` say from a profile what there is to wait for; the notifier keeps
that timer in a faust table and, when it is due, asks :func:`still_due` of the freshest profile it can
read (the cancel condition re-checked at send time) before :func:`abandonment_alert`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from schemas.facets.consent import consented_contacts
from schemas.outputs import Alert
from services.notifier.rules import alert_id
from services.notifier.view import ProfileDoc

Kind = Literal["cart_abandoned", "browse_abandoned"]


@dataclass(frozen=True)
class Pending:
    """Something waiting for its delay to pass: ``since`` is the cart's last change or the last view."""

    kind: Kind
    profile_id: str
    since: datetime
    due_at: datetime
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def alert_id(self) -> str:
        return alert_id(self.kind, self.profile_id, self.since.isoformat())

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "since": self.since.isoformat(), "due_at": self.due_at.isoformat()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Pending:
        return cls(
            kind=doc["kind"],
            profile_id=doc["profile_id"],
            since=datetime.fromisoformat(doc["since"]),
            due_at=datetime.fromisoformat(doc["due_at"]),
            details=doc.get("details", {}),
        )


def contact_channel(profile: ProfileDoc) -> dict[str, str | None] | None:
    """The first channel (email, sms, phone, push, post) the customer granted marketing consent for and
    that has an address on the profile; None: the customer may not be contacted."""
    contacts = consented_contacts(profile)
    channel = next(iter(contacts), None)
    return None if channel is None else {"channel": channel, "address": contacts[channel]}


def pending_cart(profile: ProfileDoc, delay: timedelta) -> Pending | None:
    """The timer a profile's current cart calls for; None when it is empty (never filled, emptied, ordered)."""
    cart = profile.get("cart") or {}
    items = [i for i in cart.get("items") or [] if int(i.get("quantity", 0)) > 0]
    updated_at = cart.get("updated_at")
    if not items or not updated_at:
        return None
    since = datetime.fromisoformat(updated_at)
    lines = [{k: i.get(k) for k in ("product_id", "name", "category", "price", "quantity")} for i in items]
    details = {
        "items": lines,
        "item_count": sum(int(i["quantity"]) for i in items),
        "value": str(cart.get("value", "0")),
        "currency": profile.get("currency"),
        "contact": contact_channel(profile),
    }
    return Pending("cart_abandoned", profile["profile_id"], since, since + delay, details)


def pending_browse(profile: ProfileDoc, delay: timedelta) -> Pending | None:
    """The timer a profile's recent views call for: viewed products, nothing in the cart, no order since the
    last view; None otherwise."""
    views = profile.get("recent_views") or []
    if not views or (profile.get("cart") or {}).get("items"):
        return None
    since = max(datetime.fromisoformat(v["at"]) for v in views)
    ordered = profile.get("last_order_at")
    if ordered and datetime.fromisoformat(ordered) >= since:
        return None
    viewed = [{k: v.get(k) for k in ("product_id", "name", "category", "price")} for v in views]
    details = {"viewed": viewed, "contact": contact_channel(profile)}
    return Pending("browse_abandoned", profile["profile_id"], since, since + delay, details)


def pending_for(kind: Kind, profile: ProfileDoc, delay: timedelta) -> Pending | None:
    return (pending_cart if kind == "cart_abandoned" else pending_browse)(profile, delay)


def still_due(pending: Pending, fresh: ProfileDoc | None, delay: timedelta) -> bool:
    """At send time: is the timer still what the freshest profile (None: none newer at hand) calls for?
    An order, an emptied cart, a cart change or a new view since the timer was set say no."""
    if fresh is None:
        return True
    now_pending = pending_for(pending.kind, fresh, delay)
    return now_pending is not None and now_pending.since == pending.since


def abandonment_alert(pending: Pending, fresh: ProfileDoc | None, segments: list[str], now: datetime) -> Alert:
    """The alert of a due timer: what was left, whom to contact on which consented channel (as the freshest
    profile says, else as when the timer was set), the customer's segments. Without consent for any channel
    the alert is ``internal`` (for the team, not marketing)."""
    d = pending.details
    contact = contact_channel(fresh) if fresh is not None else d.get("contact")
    if pending.kind == "cart_abandoned":
        worth = " ".join(filter(None, [d["value"], d.get("currency")]))
        what = f"cart with {d['item_count']} item(s) worth {worth} abandoned"
    else:
        what = f"{len(d['viewed'])} product(s) viewed, nothing bought"
    return Alert(
        alert_id=pending.alert_id,
        kind=pending.kind,
        profile_id=pending.profile_id,
        raised_at=now,
        summary=what if contact else f"{what} (no consent to contact: internal)",
        details={
            **d,
            "since": pending.since.isoformat(),
            "contact": contact,
            "segments": sorted(segments),
        },
        internal=contact is None,
    )
