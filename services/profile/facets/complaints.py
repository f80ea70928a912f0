"""The complaints facet: social mentions that complain (by the sentiment threshold of the rules), open
until support's first response (a reply or a closed case), and how fast support answers.

A complaint is counted once per message id, whatever the delivery count; a reply that overtakes its
complaint is kept, so the complaint arriving later is answered at once. Only the first response is timed."""

from __future__ import annotations

from datetime import datetime

from schemas.events import CaseClosed, ComplaintResponded, SocialMessage
from schemas.profile import ComplaintAnswer, OpenComplaint, Profile
from services.profile.facets import Facet
from services.profile.policy import FoldRules

MAX_ANSWERED = 50  # answered complaints remembered, so a redelivered complaint does not reopen
COMPLAINT_TEXT_CHARS = 500  # kept on the profile for the alert; the full text stays in the event


def fold_mention(p: Profile, e: SocialMessage, rules: FoldRules) -> None:
    props = e.properties
    if not e.complains(rules.complaint_sentiment) or any(c.message_id == props.message_id for c in p.open_complaints):
        return
    answer = p.answered_complaints.get(props.message_id)
    if answer is not None and answer.complained_at is not None:
        return  # answered already: a redelivery does not reopen it
    p.complaints_total += 1
    if answer is not None:  # its reply overtook it
        _answered(p, props.message_id, answer.answered_at, e.occurred_at)
        return
    p.open_complaints.append(
        OpenComplaint(
            message_id=props.message_id,
            platform=props.platform,
            handle=props.handle,
            text=props.text[:COMPLAINT_TEXT_CHARS],
            sentiment=props.sentiment,
            at=e.occurred_at,
        )
    )


def fold_response(p: Profile, e: ComplaintResponded | CaseClosed, rules: FoldRules) -> None:
    """A reply or a closed case answers an open complaint; one for a message not seen (yet) is kept."""
    message_id, at = e.properties.message_id, e.occurred_at
    if not message_id:
        return
    for i, c in enumerate(p.open_complaints):
        if c.message_id == message_id:
            del p.open_complaints[i]
            _answered(p, message_id, at, c.at)
            return
    known = p.answered_complaints.get(message_id)
    if known is None or (known.complained_at is None and at < known.answered_at):
        _remember_answer(p, message_id, ComplaintAnswer(answered_at=at))


def _answered(p: Profile, message_id: str, answered_at: datetime, complained_at: datetime) -> None:
    seconds = max((answered_at - complained_at).total_seconds(), 0.0)
    p.complaints_answered += 1
    p.last_first_response_s = seconds
    p.first_response_total_s += seconds
    p.avg_first_response_s = p.first_response_total_s / p.complaints_answered
    _remember_answer(p, message_id, ComplaintAnswer(answered_at=answered_at, complained_at=complained_at))


def _remember_answer(p: Profile, message_id: str, answer: ComplaintAnswer) -> None:
    p.answered_complaints.pop(message_id, None)
    p.answered_complaints[message_id] = answer
    if len(p.answered_complaints) > MAX_ANSWERED:
        del p.answered_complaints[next(iter(p.answered_complaints))]


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Counts and response times summed, answers united, then the open complaints united by message (one
    open in both counts once); one the other profile holds an answer for is answered now (and, when that
    profile counted the complaint too, counts once)."""
    merged.complaints_total = survivor.complaints_total + absorbed.complaints_total
    merged.complaints_answered = survivor.complaints_answered + absorbed.complaints_answered
    merged.answered_complaints = dict(
        list({**absorbed.answered_complaints, **survivor.answered_complaints}.items())[-MAX_ANSWERED:]
    )
    merged.first_response_total_s = survivor.first_response_total_s + absorbed.first_response_total_s
    last = survivor.last_first_response_s
    merged.last_first_response_s = last if last is not None else absorbed.last_first_response_s
    still_open: dict[str, OpenComplaint] = {}
    for complaint in survivor.open_complaints + absorbed.open_complaints:
        answer = merged.answered_complaints.get(complaint.message_id)
        if complaint.message_id in still_open or (answer is not None and answer.complained_at is not None):
            merged.complaints_total -= 1  # both profiles counted it
        elif answer is not None:  # the other profile saw only the reply
            _answered(merged, complaint.message_id, answer.answered_at, complaint.at)
        else:
            still_open[complaint.message_id] = complaint
    merged.open_complaints = list(still_open.values())
    n = merged.complaints_answered
    merged.avg_first_response_s = merged.first_response_total_s / n if n else None


FACET = Facet(
    "complaints",
    merge,
    folds={SocialMessage: fold_mention, ComplaintResponded: fold_response, CaseClosed: fold_response},
)
