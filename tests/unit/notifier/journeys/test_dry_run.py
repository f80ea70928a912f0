"""``crmhub journeys test``'s dry run: the steps a journey would take for a customer, waits passed at once."""

from __future__ import annotations

from datetime import timedelta

from crmhub.journeys import describe, dry_run
from tests.unit.notifier.journeys.fixtures import NOW, customer, journey

WAIT = {"name": "pause", "wait": "2d"}
MAIL = {"name": "mail", "send": "email", "consent": "email", "template": "Hi {{ profile.city }}"}


def test_a_paused_journey_is_run_through_its_waits_and_branches_with_why() -> None:
    j = journey(
        status="paused",
        policy={"quiet_hours": None},
        steps=[WAIT, {"name": "rich", "branch": "total_spent >= 100", "then": "mail", "else": "done"}, MAIL,
               {"name": "done", "exit": "not_rich"}],
    )  # fmt: skip
    lines = [(at, text) for at, effect in dry_run(j, customer(total_spent=500), NOW) if (text := describe(effect))]
    assert lines[0] == (NOW, "step pause: entered") and (NOW, "step pause: waits") in lines
    later = NOW + timedelta(days=2)
    assert (later, "step rich: branch: then") in lines and (later, "send email (journey): Hi Bonn") in lines
    poor = [describe(e) for _, e in dry_run(j, customer(total_spent=5), NOW)]
    assert "step rich: branch: else" in poor and "step done: exited: not_rich" in poor
    assert not any(text and text.startswith("send") for text in poor)


def test_without_consent_the_message_is_skipped_and_says_so() -> None:
    lines = [describe(e) for _, e in dry_run(journey(steps=[MAIL]), customer(consent={}), NOW)]
    assert "step mail: skipped: consent" in lines
