"""The e-mail of an alert (sending it to a real SMTP server is in tests/integration/test_delivery.py)."""

from __future__ import annotations

from crmhub.core.routing import EmailSink
from services.notifier.smtp import build_message, message_id
from tests.unit.notifier.fixtures import complaint

CONFIG = EmailSink(type="email", host="127.0.0.1", sender="crm@shop.test", to=["care@shop.test", "lead@shop.test"])


def test_the_message_names_the_alert_and_has_a_stable_message_id() -> None:
    alert = complaint()
    msg = build_message(alert, CONFIG)
    assert msg["From"] == "crm@shop.test" and msg["To"] == "care@shop.test, lead@shop.test"
    assert msg["Subject"].startswith("[crmhub] complaint: complaint on twitter by @angry")
    assert msg["Message-ID"] == message_id(alert) == "<complaint.000000000000000000000001@crmhub>"
    assert msg["X-Crmhub-Alert-Id"] == alert.alert_id
    assert msg["Date"] == "Fri, 14 Mar 2025 12:00:00 +0000"
    body = msg.get_content()
    assert "profile: P1" in body and '"message_id": "m-1"' in body
