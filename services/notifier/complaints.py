"""Pure complaint rules: an alert at once per open complaint, a priority from the customer's value and the
message's sentiment, a first-response SLA per priority, and escalations (level 2, then 3) while no reply
arrives. A reply takes the complaint out of the profile's ``open_complaints``, which closes its timer.

Service cases from every channel follow the same rules (:func:`awaiting`): an open case with no first
response yet is timed like a complaint (key ``case:<case id>``), from its opening, at the helpdesk's
priority if it gave one. A case about a social message is not timed twice: that complaint's clock runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.outputs import Alert
from services.notifier.rules import alert_id, customer_summary
from services.notifier.view import CaseDoc, ComplaintDoc, ProfileDoc

TOP_LEVEL = 3  # the complaint alert is level 1; escalations are levels 2 and 3
VERY_NEGATIVE = -0.8
NEGATIVE = -0.5


@dataclass(frozen=True)
class SlaPolicy:
    sla_s: Mapping[str, float]  # seconds to the first response, per priority (high, normal, low)
    vip_spend: Decimal  # total spent from which a customer is of high value


@dataclass(frozen=True)
class ComplaintTimer:
    """An open complaint's SLA clock: ``level`` is the last level raised, ``due_at`` when the next is due
    (None: the top level is raised, nothing more to do until the reply)."""

    profile_id: str
    complaint: ComplaintDoc  # the profile's open complaint: message_id, platform, handle, text, sentiment, at
    priority: str
    level: int
    due_at: datetime | None
    customer: dict[str, Any] = field(default_factory=dict)

    @property
    def message_id(self) -> str:
        return str(self.complaint["message_id"])

    def is_due(self, now: datetime) -> bool:
        return self.due_at is not None and self.due_at <= now

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "due_at": self.due_at.isoformat() if self.due_at else None}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ComplaintTimer:
        return cls(**{**doc, "due_at": datetime.fromisoformat(doc["due_at"]) if doc["due_at"] else None})


def awaiting(profile: ProfileDoc) -> list[ComplaintDoc]:
    """What waits for support's first response: the open complaints, then the open cases with no response
    yet (but those about a social message, which its complaint stands for)."""
    cases = profile.get("open_cases") or []
    waiting = [c for c in cases if c.get("opened_at") and not c.get("first_response_at") and not c.get("message_id")]
    return [*(profile.get("open_complaints") or []), *map(_as_complaint, waiting)]


def _as_complaint(case: CaseDoc) -> ComplaintDoc:
    return {
        "message_id": f"case:{case['case_id']}",
        "platform": case.get("channel") or "other",
        "handle": "",
        "text": case.get("subject", ""),
        "at": case.get("opened_at") or "",  # set: only opened cases wait
        "case_id": case["case_id"],
        "category": case.get("category"),
        "priority": case.get("priority"),
        "order_id": case.get("order_id"),
        "product_id": case.get("product_id"),
    }


def priority(profile: ProfileDoc, complaint: ComplaintDoc, vip_spend: Decimal) -> str:
    """The case's priority if the helpdesk gave one; else high, normal or low from two scores added: value
    (2 a high-value customer: total spent from ``vip_spend`` or RFM monetary 5; 1 a customer with orders;
    else 0) and sentiment (2 at or below -0.8, 1 at or below -0.5, else 0). 3 or more: high; 1-2: normal;
    0: low."""
    given = complaint.get("priority")
    if given:
        return given
    rfm = profile.get("rfm") or {}
    if Decimal(str(profile.get("total_spent") or 0)) >= vip_spend or rfm.get("monetary") == 5:
        value = 2
    else:
        value = 1 if profile.get("order_count") else 0
    sentiment = complaint.get("sentiment")
    mood = 0 if sentiment is None else 2 if sentiment <= VERY_NEGATIVE else 1 if sentiment <= NEGATIVE else 0
    score = value + mood
    return "high" if score >= 3 else "normal" if score >= 1 else "low"


def complaint_alert(profile: ProfileDoc, complaint: ComplaintDoc, prio: str, now: datetime) -> Alert:
    """Level 1, raised at once. The id depends on the message only: the same however often the profile changes."""
    return Alert(
        alert_id=alert_id("complaint", complaint["platform"], complaint["message_id"]),
        kind="complaint",
        profile_id=profile["profile_id"],
        raised_at=now,
        summary=f"{_what(complaint)}: {complaint['text'][:120]}",
        details={**_about(complaint), "priority": prio, "level": 1, "customer": customer_summary(profile)},
    )


def _what(c: ComplaintDoc) -> str:
    if "case_id" in c:
        return f"{c['platform']} case {c['case_id']}" + (f" ({c['category']})" if c.get("category") else "")
    return f"complaint on {c['platform']} by @{c['handle'].lstrip('@')}"


def _about(c: ComplaintDoc) -> dict[str, Any]:
    if "case_id" in c:
        keys = ("case_id", "category", "order_id", "product_id", "text", "at")
        return {"channel": c["platform"], **{k: c.get(k) for k in keys}}
    keys = ("platform", "handle", "message_id", "text", "sentiment", "at")
    return {k: c.get(k) for k in keys}


def track_complaints(
    timers: Mapping[str, ComplaintTimer], profile: ProfileDoc, policy: SlaPolicy, now: datetime
) -> tuple[dict[str, ComplaintTimer], list[Alert]]:
    """A profile changed: the timers of what awaits a first response (new ones start at level 1, due one
    SLA after the complaint or the opening; answered ones are gone) and the level-1 alert of each
    (re-raising one is harmless: its id was delivered before)."""
    kept: dict[str, ComplaintTimer] = {}
    alerts = []
    for c in awaiting(profile):
        timer = timers.get(c["message_id"])
        if timer is None:
            prio = priority(profile, c, policy.vip_spend)
            due = datetime.fromisoformat(c["at"]) + timedelta(seconds=policy.sla_s[prio])
            timer = ComplaintTimer(profile["profile_id"], c.copy(), prio, 1, due, customer_summary(profile))
        kept[timer.message_id] = timer
        alerts.append(complaint_alert(profile, c, timer.priority, now))
    return kept, alerts


def next_due(timers: Mapping[str, ComplaintTimer]) -> float | None:
    """The earliest due time of ``timers`` as a timestamp; None when none has a level left to raise."""
    return min((t.due_at.timestamp() for t in timers.values() if t.due_at is not None), default=None)


def still_open(timer: ComplaintTimer, fresh: ProfileDoc | None) -> bool:
    """At send time: is the complaint still unanswered in the freshest profile (None: none newer at hand)?"""
    if fresh is None:
        return True
    return any(c["message_id"] == timer.message_id for c in awaiting(fresh))


def escalate(timer: ComplaintTimer, policy: SlaPolicy, now: datetime) -> tuple[ComplaintTimer, Alert]:
    """A due timer: the escalation alert of the next level, and the timer of the level after (due one more
    SLA later; after the top level, due never)."""
    assert timer.due_at is not None, "escalate only a due timer"
    level = timer.level + 1
    c = timer.complaint
    sla = policy.sla_s[timer.priority]
    waited = (now - datetime.fromisoformat(c["at"])).total_seconds()
    alert = Alert(
        alert_id=alert_id("complaint_escalated", c["platform"], c["message_id"], str(level)),
        kind="complaint_escalated",
        profile_id=timer.profile_id,
        raised_at=now,
        summary=f"level {level}: {timer.priority} {_what(c)} "
        f"unanswered for {waited:.0f} s (SLA {sla:.0f} s): {c['text'][:100]}",
        details={
            **_about(c),
            "priority": timer.priority,
            "level": level,
            "sla_s": sla,
            "waited_s": round(waited, 3),
            "customer": timer.customer,
        },
    )
    due = timer.due_at + timedelta(seconds=sla) if level < TOP_LEVEL else None
    return replace(timer, level=level, due_at=due), alert
