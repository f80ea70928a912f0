"""Invoices and marketing engagement end to end on the shared hub: events in, the profile, its segments,
and the overdue-invoice alert of the shipped (active) journey; an unsubscribe withdrawing consent; a
birthday trait putting the customer in retirement_age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from crmhub.hub import Hub
from tests.integration.helpers import now_iso, profile_by, publish, segment_track, uid, wait_for

pytestmark = pytest.mark.integration


def billing(type_: str, customer: str, at: datetime, **props: Any) -> dict[str, Any]:
    """An event of the billing system (source payment), as it publishes it."""
    return {
        "event_id": uid("b-"),
        "source": "payment",
        "type": type_,
        "occurred_at": at.isoformat(),
        "customer_id": customer,
        "properties": {"currency": "EUR", **props},
    }


def exported(api: httpx.Client, pid: str) -> dict[str, Any]:
    doc: dict[str, Any] = api.get(f"/v1/profiles/{pid}/export").json()
    return doc


def test_an_invoice_past_due_raises_the_overdue_alert_once_and_paying_it_leaves_the_segment(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    customer, invoice = uid("b2b-"), uid("INV-")
    issued_at = datetime.now(UTC) - timedelta(days=32)  # due two days ago: overdue since yesterday
    issue = billing("payment.invoice_issued", customer, issued_at, invoice_id=invoice, amount="500.00")
    issue["properties"]["due_at"] = (issued_at + timedelta(days=30)).isoformat()
    part = billing("payment.invoice_paid", customer, issued_at + timedelta(days=31), invoice_id=invoice, amount="200")
    publish(producer, "payment", part, issue)  # the part payment overtakes its invoice
    pid = wait_for(lambda: profile_by(api, user_id=customer), what="the customer's profile")["profile_id"]

    def alerted() -> dict[str, Any] | None:
        doc = exported(api, pid)
        alerts = [a for a in doc["alerts"] if a["kind"] == "invoice_overdue"]
        return doc if "invoice_overdue" in doc["segments"] and alerts else None

    doc = wait_for(alerted, timeout_s=60, what="the overdue segment and alert")
    (open_,) = doc["profile"]["open_invoices"]
    assert (open_["invoice_id"], open_["amount"], open_["paid"]) == (invoice, "500.00", "200.00")
    (alert,) = [a for a in doc["alerts"] if a["kind"] == "invoice_overdue"]
    due = (issued_at + timedelta(days=30)).date().isoformat()
    assert alert["summary"] == f"1 open invoice(s), 300.00 EUR outstanding, the oldest due {due}"
    rest = billing("payment.invoice_paid", customer, datetime.now(UTC), invoice_id=invoice, amount="300.00")
    publish(producer, "payment", rest)
    doc = wait_for(
        lambda: (d := exported(api, pid)) and "invoice_overdue" not in d["segments"] and d, what="the segment left"
    )
    assert doc["profile"]["open_invoices"] == [] and doc["profile"]["invoices_paid"] == 1
    assert [a["kind"] for a in doc["alerts"]].count("invoice_overdue") == 1  # once


def test_an_opened_email_makes_the_customer_engaged_and_an_unsubscribe_withdraws_consent_at_once(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    anon, user, email = uid("anon-"), uid("user-"), f"{uid('en-')}@example.com"
    ident = {"type": "identify", "messageId": uid("m-"), "anonymousId": anon, "userId": user, "timestamp": now_iso()}
    consent = segment_track("consent.granted", {"channel": "email"}, anon, user)
    opened = segment_track("Email Opened", {"email_id": "e-1", "campaign_id": "spring-sale"}, anon, user)
    traits = {"email": email, "birthday": "1950-01-15"}  # 67 long since: retirement_age by years_since
    publish(producer, "web", {**ident, "traits": traits}, consent, opened)
    pid = wait_for(lambda: profile_by(api, user_id=user), what="the customer's profile")["profile_id"]
    expected = {"engaged_30d", "email_marketable", "retirement_age"}
    doc = wait_for(
        lambda: (d := exported(api, pid)) and expected <= set(d["segments"]) and d,
        timeout_s=60,
        what="the engaged, marketable and retirement-age segments",
    )
    assert doc["profile"]["engagement_counts"] == {"email_opened": 1}
    assert doc["profile"]["engaged_campaigns"] == ["spring-sale"]
    unsubscribed = segment_track("Unsubscribed", {"email_id": "e-1", "campaign_id": "spring-sale"}, anon, user)
    publish(producer, "web", unsubscribed)
    doc = wait_for(
        lambda: (d := exported(api, pid)) and "email_marketable" not in d["segments"] and d,
        timeout_s=60,
        what="the consent withdrawn",
    )
    decision = doc["profile"]["consent"]["email"]["marketing"]
    assert (decision["granted"], decision["method"]) == (False, "unsubscribed")
    assert "engaged_30d" in doc["segments"]
