"""Service cases and feedback end to end on the shared hub: a phone case no one answers raises the
complaint alert and escalates to levels 2 and 3 on the complaint SLA (opened long enough ago that both
levels are due at once), a reply stops it and the closing takes the customer out of open_service_case;
the survey after it comes back a detractor and a one-star review follows: their alerts and segments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from crmhub.hub import Hub
from tests.integration.helpers import profile_by, publish, segment_track, uid, wait_for

pytestmark = pytest.mark.integration

HIGH_SLA_S = 900  # the hub's default CRMHUB_COMPLAINT_SLA for high priority


def helpdesk(type_: str, customer: str, at: datetime, **props: Any) -> dict[str, Any]:
    """An event of the helpdesk or the survey tool (source support), as it publishes it."""
    return {
        "event_id": uid("h-"),
        "source": "support",
        "type": type_,
        "occurred_at": at.isoformat(),
        "customer_id": customer,
        "properties": props,
    }


def exported(api: httpx.Client, pid: str) -> dict[str, Any]:
    doc: dict[str, Any] = api.get(f"/v1/profiles/{pid}/export").json()
    return doc


def kinds(doc: dict[str, Any]) -> list[tuple[str, int | None]]:
    return sorted((a["kind"], a["details"].get("level")) for a in doc["alerts"])


def test_a_phone_case_escalates_unanswered_until_a_reply_and_its_survey_comes_back_a_detractor(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    customer, case = uid("caller-"), uid("CS-")
    opened_at = datetime.now(UTC) - timedelta(seconds=2 * HIGH_SLA_S + 60)  # levels 2 and 3 both due
    opening = helpdesk("support.case_opened", customer, opened_at, case_id=case, channel="phone", category="repair")
    opening["properties"] |= {"priority": "high", "subject": "The kettle stopped working", "order_id": "W-1"}
    note = helpdesk("support.note_added", customer, opened_at, case_id=case, note_id="n-1", agent="anna.k")
    publish(producer, "support", note, opening)  # the note of the call overtakes the opening: internal anyway
    pid = wait_for(lambda: profile_by(api, user_id=customer), what="the caller's profile")["profile_id"]
    want = [("complaint", 1), ("complaint_escalated", 2), ("complaint_escalated", 3)]
    doc = wait_for(
        lambda: (d := exported(api, pid)) and kinds(d) == want and "open_service_case" in d["segments"] and d,
        timeout_s=60,
        what="the case's alert, its two escalations and the open_service_case segment",
    )
    first = next(a for a in doc["alerts"] if a["kind"] == "complaint")
    assert first["summary"] == f"phone case {case} (repair): The kettle stopped working"
    assert (first["details"]["case_id"], first["details"]["priority"]) == (case, "high")
    (open_case,) = doc["profile"]["open_cases"]
    assert (open_case["channel"], open_case["first_response_at"]) == ("phone", None)

    now = datetime.now(UTC)
    reply = helpdesk("support.note_added", customer, now, case_id=case, note_id="n-2", agent="ben.m", reply=True)
    closing = helpdesk("support.case_closed", customer, now + timedelta(seconds=1), case_id=case, agent="ben.m")
    survey = helpdesk("survey.answered", customer, now, response_id=uid("R-"), nps=3, csat=2, case_id=case)
    survey["properties"]["text"] = "Nobody called me back."
    review = {"product_id": "kettle-1", "review_id": uid("v-"), "rating": 1, "review_body": "Broke in a week."}
    publish(producer, "support", reply, closing, survey)
    publish(producer, "web", segment_track("Product Reviewed", review, uid("anon-"), customer))
    want = [("bad_review", None), *want, ("detractor", None)]  # sorted by kind
    segments = {"detractors", "unhappy_reviewers"}  # the review comes on another topic: it may come later

    def settled(d: dict[str, Any]) -> bool:
        return kinds(d) == want and segments <= set(d["segments"]) and "open_service_case" not in d["segments"]

    doc = wait_for(
        lambda: (d := exported(api, pid)) and settled(d) and d,
        timeout_s=60,
        what="the detractor and bad-review alerts, the case closed and the detractors and unhappy_reviewers segments",
    )
    profile = doc["profile"]
    assert profile["open_cases"] == [] and [c["case_id"] for c in profile["closed_cases"]] == [case]
    assert (profile["cases_closed"], profile["nps_latest"], profile["csat_latest"]) == (1, 3, 2)
    assert profile["avg_case_response_s"] == pytest.approx((now - opened_at).total_seconds())
    assert [n["note_id"] for n in profile["case_notes"]] == ["n-1", "n-2"]
    detractor = next(a for a in doc["alerts"] if a["kind"] == "detractor")
    assert detractor["summary"] == f"unhappy survey answer (NPS 3, CSAT 2) about case {case}: Nobody called me back."
