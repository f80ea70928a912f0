"""The alerts a profile change calls for at once, pure: every window of failed payments, a failed delivery,
an unhappy survey answer or review. Their ids make repeats harmless: a later change raises again what an
earlier one raised, and delivery drops an id it has delivered.

The alerts that wait for something (cart and browse abandonment, the complaint SLA and its escalations)
are journeys shipped with crmhub (``services/notifier/journeys/journeys.yaml``, docs/alerts.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.outputs import Alert
from services.notifier.deliveries import delivery_alerts
from services.notifier.feedback import feedback_alerts
from services.notifier.payments import payment_alerts
from services.notifier.view import ProfileDoc


def profile_alerts(change: ProfileDoc, payment_window: timedelta, now: datetime) -> list[Alert]:
    return [*payment_alerts(change, payment_window, now), *delivery_alerts(change, now), *feedback_alerts(change, now)]
