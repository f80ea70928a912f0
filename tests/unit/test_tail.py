"""``crmhub tail alerts`` lines."""

from __future__ import annotations

from crmhub.tail import format_alert
from tests.unit.notifier.fixtures import complaint


def line(**changes: object) -> str:
    doc = {**complaint().model_dump(mode="json"), **changes}
    return format_alert(doc).plain


def test_a_line_names_time_kind_profile_summary_and_id() -> None:
    alert = complaint()
    assert line() == f"12:00:00 complaint           P1  {alert.summary}  {alert.alert_id}"


def test_level_count_and_internal_are_tagged() -> None:
    assert " complaint_escalated [level 2] P1 " in line(kind="complaint_escalated", details={"level": 2})
    assert " payment_failed      [3 times] P1 " in line(kind="payment_failed", details={"count": 3})
    assert " payment_failed      P1 " in line(kind="payment_failed", details={"count": 1})
    assert " cart_abandoned      [internal] P1 " in line(kind="cart_abandoned", details={}, internal=True)
