"""The cases facet: service cases from every channel, folded from ``support.case_opened``,
``support.note_added`` and ``support.case_closed`` (and ``support.complaint_responded`` for a case opened
about a social message).

A case's first response is the earliest of: a note by an agent marked as a reply to the customer, a
``support.complaint_responded`` for the social message the case is about, its closing. Every event sets
what it knows on the case's record (earliest times win), and the record's two handling times are
recomputed from its times: each time counts once in the totals, corrected when an earlier event arrives
late, so the result does not depend on the order events arrive in. A closed case moves to
``closed_cases`` (the latest ``MAX_CLOSED``), which also keeps a redelivered opening from reopening it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from schemas.events import CaseClosed, CaseOpened, ComplaintResponded, NoteAdded
from schemas.profile import CaseNote, Profile, ServiceCase
from services.profile.facets import Facet
from services.profile.policy import FoldRules

MAX_OPEN = 100  # more open at once: the records without an opening go first, then the oldest cases
MAX_CLOSED = 50
MAX_NOTES = 50  # the latest notes of all cases (the helpdesk keeps the whole thread)
NOTE_TEXT_CHARS = 1000
SUBJECT_CHARS = 500


def fold_opened(p: Profile, e: CaseOpened, rules: FoldRules) -> None:
    props = e.properties
    known = _find(p, props.case_id)
    if known is not None and known.opened_at is not None:
        return  # a redelivery
    p.cases_opened += 1
    fields = props.model_dump(include={"channel", "category", "priority", "order_id", "product_id", "message_id"})
    fields |= {"subject": props.subject[:SUBJECT_CHARS], "opened_at": e.occurred_at}
    _update(p, props.case_id, lambda c: c.model_copy(update=fields))


def fold_note(p: Profile, e: NoteAdded, rules: FoldRules) -> None:
    props = e.properties
    if any(n.note_id == props.note_id and n.case_id == props.case_id for n in p.case_notes):
        return
    note = CaseNote(
        case_id=props.case_id,
        note_id=props.note_id,
        agent=props.agent,
        reply=props.reply,
        text=props.text[:NOTE_TEXT_CHARS],
        at=e.occurred_at,
    )
    p.case_notes = sorted([*p.case_notes, note], key=lambda n: (n.at, n.note_id))[-MAX_NOTES:]
    if props.reply:
        _update(p, props.case_id, lambda c: _responded(c, e.occurred_at))


def fold_complaint_responded(p: Profile, e: ComplaintResponded, rules: FoldRules) -> None:
    for case in [c for c in p.open_cases if c.message_id == e.properties.message_id]:
        _update(p, case.case_id, lambda c: _responded(c, e.occurred_at))


def fold_closed(p: Profile, e: CaseClosed, rules: FoldRules) -> None:
    at = e.occurred_at

    def close(c: ServiceCase) -> ServiceCase:
        return _responded(c, at).model_copy(update={"closed_at": _first(c.closed_at, at)})

    _update(p, e.properties.case_id, close)


def _first(known: datetime | None, at: datetime) -> datetime:
    return at if known is None or at < known else known


def _responded(c: ServiceCase, at: datetime) -> ServiceCase:
    return c.model_copy(update={"first_response_at": _first(c.first_response_at, at)})


def _find(p: Profile, case_id: str) -> ServiceCase | None:
    return next((c for c in [*p.open_cases, *p.closed_cases] if c.case_id == case_id), None)


def _update(p: Profile, case_id: str, change: Callable[[ServiceCase], ServiceCase]) -> None:
    """Replace the case's record (a new one if none) by ``change`` of it, its times recomputed and counted."""
    known = _find(p, case_id)
    if known is not None:
        _count(p, known, -1)
        p.open_cases = [c for c in p.open_cases if c.case_id != case_id]
        p.closed_cases = [c for c in p.closed_cases if c.case_id != case_id]
    case = _timed(change(known or ServiceCase(case_id=case_id)))
    _count(p, case, 1)
    _store(p, case)
    _averages(p)


def _timed(c: ServiceCase) -> ServiceCase:
    def since_opened(at: datetime | None) -> float | None:
        return None if c.opened_at is None or at is None else max((at - c.opened_at).total_seconds(), 0.0)

    times = {"first_response_s": since_opened(c.first_response_at), "handling_s": since_opened(c.closed_at)}
    return c.model_copy(update=times)


def _store(p: Profile, case: ServiceCase) -> None:
    """Among the open or the closed cases, within their bounds (the times of a case dropped stay counted):
    open records without an opening go first, then the oldest cases; closed, those closed first."""
    if case.closed_at is None:
        cases = sorted([*p.open_cases, case], key=lambda c: (c.opened_at is not None, c.opened_at, c.case_id))
        p.open_cases = cases[-MAX_OPEN:]
    else:
        p.closed_cases = sorted([*p.closed_cases, case], key=lambda c: (c.closed_at, c.case_id))[-MAX_CLOSED:]


def _count(p: Profile, c: ServiceCase, sign: int) -> None:
    """Add (``sign`` 1) or take back (-1) the case's handling times in the totals."""
    if c.first_response_s is not None:
        p.cases_responded += sign
        p.case_response_total_s += sign * c.first_response_s
    if c.handling_s is not None:
        p.cases_closed += sign
        p.case_handling_total_s += sign * c.handling_s


def _averages(p: Profile) -> None:
    p.avg_case_response_s = p.case_response_total_s / p.cases_responded if p.cases_responded else None
    p.avg_case_handling_s = p.case_handling_total_s / p.cases_closed if p.cases_closed else None


def _combined(ours: ServiceCase, theirs: ServiceCase) -> ServiceCase:
    """One case known to both profiles: the opening from whichever has it, the earliest of their times."""
    base = ours if ours.opened_at is not None or theirs.opened_at is None else theirs
    times: dict[str, datetime | None] = {}
    for name in ("first_response_at", "closed_at"):
        found = [t for t in (getattr(ours, name), getattr(theirs, name)) if t is not None]
        times[name] = min(found, default=None)
    return base.model_copy(update=times)


def _recounted(p: Profile, ours: ServiceCase, theirs: ServiceCase) -> ServiceCase:
    """One case both profiles hold, counted in the summed totals twice: taken back from them twice and
    counted once combined (an opening both folded counts once)."""
    p.cases_opened -= ours.opened_at is not None and theirs.opened_at is not None
    _count(p, ours, -1)
    _count(p, theirs, -1)
    case = _timed(_combined(ours, theirs))
    _count(p, case, 1)
    return case


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Counts and totals summed, cases united by id (one both hold counts once), notes united by id, the
    latest kept."""
    merged.cases_opened = survivor.cases_opened + absorbed.cases_opened
    merged.cases_responded = survivor.cases_responded + absorbed.cases_responded
    merged.cases_closed = survivor.cases_closed + absorbed.cases_closed
    merged.case_response_total_s = survivor.case_response_total_s + absorbed.case_response_total_s
    merged.case_handling_total_s = survivor.case_handling_total_s + absorbed.case_handling_total_s
    merged.open_cases, merged.closed_cases = [], []
    theirs = {c.case_id: c for c in [*absorbed.open_cases, *absorbed.closed_cases]}
    for ours in [*survivor.open_cases, *survivor.closed_cases]:
        other = theirs.pop(ours.case_id, None)
        _store(merged, ours if other is None else _recounted(merged, ours, other))
    for other in theirs.values():
        _store(merged, other)
    _averages(merged)
    notes = {(n.case_id, n.note_id): n for n in [*absorbed.case_notes, *survivor.case_notes]}
    merged.case_notes = sorted(notes.values(), key=lambda n: (n.at, n.note_id))[-MAX_NOTES:]


FACET = Facet(
    "cases",
    merge,
    folds={
        CaseOpened: fold_opened,
        NoteAdded: fold_note,
        ComplaintResponded: fold_complaint_responded,
        CaseClosed: fold_closed,
    },
)
