"""Journey definitions: the shipped file loads, everything wrong is found when defined, with a message
naming the journey, the step and what is wrong."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from crmhub.core.errors import ConfigError
from crmhub.core.settings import Settings
from services.notifier.journeys.catalog import JourneyError, load_journeys, parse_journey, parse_journeys
from services.notifier.journeys.definition import SendStep, SetStep, WaitStep
from tests.unit.notifier.journeys.fixtures import journey

MAIL = {"name": "mail", "send": "email", "consent": "email", "template": "Hi"}


def test_the_shipped_journeys_load_and_validate() -> None:
    shipped = {j.id: j for j in load_journeys()}
    assert set(shipped) == {
        "cart-abandonment", "browse-abandonment", "complaint-sla", "case-sla", "win-back", "review-request",
        "birthday", "warranty-ending", "invoice-overdue", "successor-offer", "delivery-late", "review-after-delivery",
        "membership-renewal", "member-win-back", "member-event-invite",
    }  # fmt: skip
    cart = shipped["cart-abandonment"]
    assert cart.reentry == "restart" and cart.exit.left_trigger
    wait = cart.steps[0]
    assert isinstance(wait, WaitStep) and (wait.wait, wait.since) == (timedelta(hours=1), "trigger")
    alert = cart.steps[1]
    assert isinstance(alert, SendStep) and (alert.kind, alert.without_consent) == ("cart_abandoned", "internal")
    assert cart.policy.cap is not None and cart.policy.cap.messages == 3  # the file's policy
    for sla in (shipped["complaint-sla"], shipped["case-sla"]):
        assert [s.kind for s in sla.steps if isinstance(s, SendStep)] == ["complaint"] + ["complaint_escalated"] * 2
    alerts = {"cart-abandonment", "browse-abandonment", "complaint-sla", "case-sla", "invoice-overdue"}
    assert {j.id for j in shipped.values() if j.status == "active"} == alerts  # the examples are paused


def test_the_shipped_alert_journeys_take_their_waits_from_the_settings() -> None:
    settings = Settings(abandonment_delay_s=20, browse_abandonment_delay_s=0, complaint_sla="high:1,normal:2.5,low:3")
    shipped = {j.id: j for j in load_journeys(settings)}
    cart, browse = shipped["cart-abandonment"].steps[0], shipped["browse-abandonment"]
    assert isinstance(cart, WaitStep) and cart.wait == timedelta(seconds=20)
    assert browse.status == "paused"  # a delay of 0: browse abandonment is off
    (priority, *_) = shipped["complaint-sla"].steps
    assert isinstance(priority, SetStep) and "2.5" in priority.values["sla_s"].source


def test_a_journeys_file_naming_an_unknown_setting_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text("journeys:\n  - {id: a, trigger: {event: page}, steps: [{name: s, wait: '${delay_s}'}]}\n")
    with pytest.raises(JourneyError, match=r"unknown setting \$\{delay_s\} \(one of abandonment_delay_s, "):
        load_journeys(Settings(journeys_file=path))


def test_a_definition_written_back_reads_the_same() -> None:
    for j in load_journeys():
        doc = j.model_dump(mode="json", by_alias=True)
        assert parse_journey(doc).model_dump(mode="json", by_alias=True) == doc


def error_of(**fields: Any) -> str:
    with pytest.raises(JourneyError) as caught:
        journey(**fields)
    assert isinstance(caught.value, ConfigError)
    return str(caught.value)


def with_step(**step: Any) -> list[dict[str, Any]]:
    return [{"name": "first", "wait": "1h"}, {**MAIL, **step}]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"steps": with_step(template="Hi {{ profile.city ")},
         "journey 'j', step 'mail': template: template syntax error on line 1: unexpected end of template"),
        ({"steps": with_step(send="fax")}, "journey 'j', step 'mail': send: Input should be 'webhook', 'slack', "
                                           "'email', 'topic' or 'alert'"),
        ({"steps": with_step(consent="pigeon")}, "journey 'j', step 'mail': consent: unknown consent channel "
                                                  "'pigeon' (one of email, sms, phone, push, post, or any)"),
        ({"steps": with_step(kind="party")}, "journey 'j', step 'mail': kind: unknown message kind 'party'"),
        ({"steps": [{"name": "w", "wait": "2 days"}, MAIL]},
         "journey 'j', step 'w': wait: bad duration '2 days': expected a number and a unit"),
        ({"steps": [{"name": "w", "wait": "-1h"}, MAIL]}, "journey 'j', step 'w': wait: duration must not be negative"),
        ({"steps": [{"name": "w", "wait": "{{ 1 + }}"}, MAIL]}, "journey 'j', step 'w': wait: expression syntax error"),
        ({"steps": [{"name": "w", "until": "25:00"}, MAIL]}, "journey 'j', step 'w': until: bad time of day '25:00'"),
        ({"steps": [{"name": "w"}, MAIL]}, "journey 'j', step 'w': a step needs one of wait, until, branch, set, send"),
        ({"steps": [{"name": "b", "branch": "totl_spent > 5", "then": "mail"}, MAIL]},
         "journey 'j', step 'b': branch: unknown field 'totl_spent' in 'totl_spent > 5' (did you mean 'total_spent'?)"),
        ({"steps": [{"name": "b", "branch": "city > 5", "then": "mail"}, MAIL]},
         "journey 'j', step 'b': branch: bad condition 'city > 5'"),
        ({"steps": [{"name": "b", "branch": "order_count > 0", "then": "nowhere"}, MAIL]},
         "journey 'j': step 'b' goes to unknown step 'nowhere' (steps: b, mail)"),
        ({"steps": [MAIL, {"name": "b", "branch": "order_count > 0", "then": "mail"}]},
         "journey 'j': step 'b' goes back to 'mail': branches only go forward"),
        ({"steps": [MAIL, MAIL]}, "journey 'j': step names must be unique: mail"),
        ({"steps": []}, "journey 'j': steps: Tuple should have at least 1 item"),
        ({"trigger": {"date": "wedding_day"}}, "journey 'j': trigger.date: unknown date field 'wedding_day' (one of"),
        ({"trigger": {"date": "traits.birthday", "offset": "12h"}},
         "journey 'j': trigger.offset: a date offset is whole days"),
        ({"trigger": {"event": "Order Completed", "where": "total >"}}, "journey 'j': trigger.where: bad condition"),
        ({"trigger": {"webhook": "x"}}, "journey 'j': trigger: a trigger needs segment, event, date, profile or items"),
        ({"trigger": {"profile": "cart_items > 0", "occurrence": "cart"}}, "journey 'j': trigger.occurrence: unknown "
                                                                            "profile field 'cart'"),
        ({"trigger": {"items": "carts", "key": "id"}}, "journey 'j': trigger.items: unknown profile list 'carts'"),
        ({"exit": {"left_trigger": True}}, "journey 'j': exit left_trigger needs a profile or items trigger"),
        ({"trigger": {"event": "Signed Up"}}, "journey 'j': trigger.event: unknown event type 'Signed Up'"),
        ({"exit": {"left_segment": True}}, "journey 'j': exit left_segment needs a segment trigger"),
        ({"exit": {"when": ["days_since(last_order_at) > $now"]}}, "journey 'j': exit.when.0: "),
        ({"reentry": "sometimes"}, "journey 'j': reentry: reentry is never, restart, parallel or a duration like "
                                   "30d, not 'sometimes'"),
        ({"policy": {"timezone": "Mars/Olympus"}}, "journey 'j': policy.timezone: unknown time zone 'Mars/Olympus'"),
        ({"id": "Bad Id"}, "journey 'Bad Id': id: name 'Bad Id' must be 1-64 characters of a-z, 0-9, _ and -"),
    ],
)  # fmt: skip
def test_each_error_names_the_journey_the_step_and_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    assert error_of(**fields).startswith(message)


def test_a_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text("journeys:\n  - id: a\n    trigger: {event: page}\n    steps: [{name: s, wait: soon}]\n")
    with pytest.raises(JourneyError, match=rf"^journey file {path}: journey 'a', step 's': wait: bad duration 'soon'"):
        load_journeys(Settings(journeys_file=path))
    with pytest.raises(JourneyError, match="expected a mapping with a 'journeys' list"):
        parse_journeys("- 1", "x.yaml")
    twice = "journeys:\n" + "  - {id: a, trigger: {event: page}, steps: [{name: s, exit: done}]}\n" * 2
    with pytest.raises(JourneyError, match=r"x\.yaml: duplicate journey ids"):
        parse_journeys(twice, "x.yaml")


def test_unquoted_times_of_day_in_yaml_still_read_as_times() -> None:
    text = "journeys:\n  - {id: a, trigger: {event: page}, steps: [{name: s, until: 21:30}]}\n"  # YAML 1.1: 1290
    (j,) = parse_journeys(text, "x.yaml")
    assert j.steps[0].model_dump(mode="json")["until"] == "21:30"


def test_a_time_of_day_with_seconds_is_written_back_with_them() -> None:
    doc = {"id": "a", "trigger": {"date": "traits.due", "at": "09:00:30"}, "steps": [{"name": "s", "exit": "x"}]}
    saved = parse_journey(doc).model_dump(mode="json", by_alias=True)  # as the API stores it
    assert saved["trigger"]["at"] == "09:00:30" and parse_journey(saved).trigger == parse_journey(doc).trigger
