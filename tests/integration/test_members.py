"""Association members on the session's real stack, end to end: membership and association-event events
in, the member's profile (membership, events, chapter), the member segments, and the shipped renewal
reminder (its trigger, re-entry and exit, switched on with a message to the team) sent once for a
membership ending in 30 days; a renewal moves the expiry and sends nothing more now."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from crmhub.hub import Hub
from services.notifier.journeys.catalog import load_journeys
from tests.integration.helpers import (
    alerts,
    due_day,
    now_iso,
    profile_by,
    publish,
    segments,
    uid,
    wait_for,
    wait_journeys_in_force,
)

pytestmark = pytest.mark.integration


def member_event(type_: str, member: str, at: datetime, **props: Any) -> dict[str, Any]:
    """A native event of the association's membership system (crm.raw.web.v1)."""
    event = {"event_id": uid("mb-"), "source": "web", "type": type_, "occurred_at": at.isoformat()}
    return {**event, "customer_id": member, "properties": props}


@pytest.fixture
def renewal(hub: Hub, api: httpx.Client) -> Iterator[str]:
    """The shipped membership-renewal journey switched on under a new id, telling the team instead of
    e-mailing the member (no quiet hours in the test); deleted afterwards."""
    (shipped,) = [j for j in load_journeys() if j.id == "membership-renewal"]
    doc = shipped.model_dump(mode="json", by_alias=True, exclude={"version"})
    step = {"name": "remind", "send": "topic", "template": "renew by {{ profile.membership_expires_at.date() }}"}
    doc |= {"id": uid("renewal-"), "status": "active", "steps": [step]}
    response = api.post("/v1/journeys", json=doc)
    assert response.status_code == 201, response.text
    wait_journeys_in_force(hub.settings, f"{doc['id']} v1 active")
    yield doc["id"]
    api.delete(f"/v1/journeys/{doc['id']}")


def test_a_member_whose_membership_ends_in_30_days_gets_the_renewal_reminder_once(
    api: httpx.Client, producer: KafkaProducer, renewal: str
) -> None:
    member, now = uid("member-"), datetime.now(UTC)
    expires = datetime.combine(due_day() + timedelta(days=30), datetime.min.time(), UTC) + timedelta(hours=9)
    joined = member_event("membership.started", member, expires - timedelta(days=365), plan="standard",
                          fee="60.00", currency="EUR", expires_at=expires.isoformat())  # fmt: skip
    went = []
    for n, days in enumerate((20, 10)):  # registered, then came: two events in the last month
        props = {"event_id": uid("ev-"), "event_name": f"meetup {n}"}
        props["starts_at"] = (now - timedelta(days=days)).isoformat()
        went += [member_event("association_event.registered", member, now - timedelta(days=days + 5), **props)]
        went += [member_event("association_event.attended", member, now - timedelta(days=days), **props)]
    chapter = {"type": "group", "messageId": uid("m-"), "userId": member, "groupId": "chapter-north"}
    publish(producer, "web", joined, *went, {**chapter, "timestamp": now_iso(), "traits": {"name": "North"}})

    def folded() -> dict[str, Any] | None:
        p = profile_by(api, user_id=member)
        return p if p and p["membership"] and len(p["member_events"]) == 2 and p["groups"] else None

    p = wait_for(folded, 30, what="the membership, events and chapter on the profile")
    pid, membership = p["profile_id"], p["membership"]
    assert (membership["status"], membership["plan"], membership["fee"]) == ("active", "standard", "60.00")
    assert all(e["attended_at"] for e in p["member_events"]) and "chapter-north" in p["groups"]
    expected = {"membership_renewal_due", "engaged_members_unregistered"}
    wait_for(lambda: expected <= segments(api, pid), 30, what="the renewal-due and engaged segments")
    (sent,) = wait_for(lambda: alerts(api, pid, "journey"), 30, what="the renewal reminder")
    assert sent["summary"] == f"renew by {expires.date().isoformat()}"

    ahead = {"event_id": uid("ev-"), "event_name": "gala", "starts_at": (now + timedelta(days=40)).isoformat()}
    renewed = member_event("membership.renewed", member, now, plan="standard", fee="60.00", currency="EUR",
                           expires_at=(expires + timedelta(days=365)).isoformat())  # fmt: skip
    publish(producer, "web", member_event("association_event.registered", member, now, **ahead), renewed)
    wait_for(lambda: None if segments(api, pid) & expected else True, 30, what="both segments left")
    time.sleep(2)  # the changed profile rescheduled the date: the next term's reminder is a year away
    assert len(alerts(api, pid, "journey")) == 1  # once
