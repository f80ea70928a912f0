"""The members facet: the membership folded from ``membership.*`` and the association's events from
``association_event.*``.

Every rule keeps the latest by event time, whatever order events arrive in, and the same event twice
changes nothing: the membership's status is the latest start, renewal, lapse or cancellation's (an end
wins a tie); plan, fee, expiry and member number are the latest start or renewal's (the term), so a lapse
keeps the last term's expiry; member since is the earliest start or renewal. An event of the association
keeps its latest registration, cancellation and first attendance. Folding an event is combining what the
profile knows with what the event says, with the same function a merge combines two profiles with.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.events import (
    AssociationEventAttended,
    AssociationEventCancelled,
    AssociationEventRegistered,
    MembershipCancelled,
    MembershipLapsed,
    MembershipRenewed,
    MembershipStarted,
)
from schemas.facets.members import MemberEvent, Membership, Status
from schemas.profile import Profile
from services.profile.facets import Facet
from services.profile.policy import FoldRules

MAX_MEMBER_EVENTS = 50  # the association's events kept per member; the earliest to start go first
STATUS_RANK = {"active": 0, "lapsed": 1, "cancelled": 2}  # on a tie of event times, an end wins
_EPOCH = datetime.min.replace(tzinfo=UTC)


def fold_term(p: Profile, e: MembershipStarted | MembershipRenewed, rules: FoldRules) -> None:
    props, at = e.properties, e.occurred_at
    term = Membership(status="active", status_at=at, plan=props.plan, fee=props.fee, currency=props.currency,
                      expires_at=props.expires_at, term_at=at, since=at, membership_id=props.membership_id)  # fmt: skip
    p.membership = combined(p.membership, term)


def fold_end(p: Profile, e: MembershipLapsed | MembershipCancelled, rules: FoldRules) -> None:
    status: Status = "lapsed" if isinstance(e, MembershipLapsed) else "cancelled"
    end = Membership(status=status, status_at=e.occurred_at, membership_id=e.properties.membership_id)
    p.membership = combined(p.membership, end)


def combined(ours: Membership | None, theirs: Membership | None) -> Membership | None:
    """One membership of two accounts of it: commutative, so neither arrival order nor merge order matters."""
    if ours is None or theirs is None:
        return ours or theirs
    status = max(ours, theirs, key=lambda m: (m.status_at, STATUS_RANK[m.status]))
    term = max(ours, theirs, key=_term_order)
    starts = [at for at in (ours.since, theirs.since) if at is not None]
    return term.model_copy(
        update={
            "status": status.status,
            "status_at": status.status_at,
            "since": min(starts, default=None),
            "membership_id": term.membership_id or status.membership_id,
        }
    )


def _term_order(m: Membership) -> tuple[datetime, datetime, str]:
    return (m.term_at or _EPOCH, m.expires_at or _EPOCH, m.plan or "")


def fold_registered(p: Profile, e: AssociationEventRegistered, rules: FoldRules) -> None:
    _record(p, e, registered_at=e.occurred_at)


def fold_cancelled(p: Profile, e: AssociationEventCancelled, rules: FoldRules) -> None:
    _record(p, e, cancelled_at=e.occurred_at)


def fold_attended(p: Profile, e: AssociationEventAttended, rules: FoldRules) -> None:
    _record(p, e, attended_at=e.occurred_at)


def _record(
    p: Profile, e: AssociationEventRegistered | AssociationEventCancelled | AssociationEventAttended, **at: datetime
) -> None:
    props = e.properties
    seen = MemberEvent(event_id=props.event_id, name=props.event_name, starts_at=props.starts_at,
                       seen_at=e.occurred_at, **at)  # fmt: skip
    p.member_events = _united([*p.member_events, seen])


def _united(records: list[MemberEvent]) -> list[MemberEvent]:
    """Each event once (its records combined), by start, the latest ``MAX_MEMBER_EVENTS``."""
    by_id: dict[str, MemberEvent] = {}
    for r in records:
        known = by_id.get(r.event_id)
        by_id[r.event_id] = r if known is None else _event_combined(known, r)
    ordered = sorted(by_id.values(), key=lambda r: (r.starts_at or r.seen_at, r.event_id))
    return ordered[-MAX_MEMBER_EVENTS:]


def _event_combined(a: MemberEvent, b: MemberEvent) -> MemberEvent:
    newest = sorted((a, b), key=lambda r: (r.seen_at, r.name or "", r.starts_at or _EPOCH), reverse=True)
    return newest[0].model_copy(
        update={
            "registered_at": _latest(a.registered_at, b.registered_at),
            "cancelled_at": _latest(a.cancelled_at, b.cancelled_at),
            "attended_at": min((t for t in (a.attended_at, b.attended_at) if t is not None), default=None),
            "name": next((r.name for r in newest if r.name), None),
            "starts_at": next((r.starts_at for r in newest if r.starts_at), None),
        }
    )


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((t for t in (a, b) if t is not None), default=None)


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """The two memberships combined as two accounts of one; the association's events united by id."""
    merged.membership = combined(survivor.membership, absorbed.membership)
    merged.member_events = _united([*absorbed.member_events, *survivor.member_events])


FACET = Facet(
    "members",
    merge,
    folds={
        MembershipStarted: fold_term,
        MembershipRenewed: fold_term,
        MembershipLapsed: fold_end,
        MembershipCancelled: fold_end,
        AssociationEventRegistered: fold_registered,
        AssociationEventCancelled: fold_cancelled,
        AssociationEventAttended: fold_attended,
    },
)
