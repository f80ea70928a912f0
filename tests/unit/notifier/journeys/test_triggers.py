"""Date triggers (once and yearly, offsets, time zones) and occurrence keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.notifier.journeys.effects import Schedule, Send
from services.notifier.journeys.engine import on_trigger, state_key
from services.notifier.journeys.triggers import DateTrigger, date_occurrence, event_occurrence, occurrence_key
from tests.unit.notifier.journeys.fixtures import NOW, customer, journey

BERLIN = ZoneInfo("Europe/Berlin")


def birthday(**fields: object) -> DateTrigger:
    return DateTrigger.model_validate({"date": "traits.birthday", "yearly": True, **fields})


def test_a_yearly_date_is_the_next_anniversary_at_the_local_time() -> None:
    occ = date_occurrence(birthday(), {"traits": {"birthday": "1990-06-03"}}, BERLIN, NOW)
    assert occ is not None and (occ.id, occ.at) == (
        "date:traits.birthday:2026-06-03",
        datetime(2026, 6, 3, 7, tzinfo=UTC),
    )
    past = date_occurrence(birthday(), {"traits": {"birthday": "1990-05-03"}}, BERLIN, NOW)
    assert past is not None and past.at == datetime(2027, 5, 3, 7, tzinfo=UTC)
    leap = date_occurrence(birthday(), {"traits": {"birthday": "2000-02-29"}}, BERLIN, NOW)
    assert leap is not None and leap.data == {"date": "2027-02-28"}
    assert date_occurrence(birthday(), {"traits": {}}, BERLIN, NOW) is None
    assert date_occurrence(birthday(), {"traits": {"birthday": "soon"}}, BERLIN, NOW) is None


def test_a_yearly_date_with_an_offset_comes_first_on_the_day_the_offset_makes() -> None:
    signup = DateTrigger.model_validate({"date": "created_at", "offset": "365d", "yearly": True})
    today = {"created_at": NOW - timedelta(hours=1)}  # this morning: the first anniversary is a year away
    occ = date_occurrence(signup, today, BERLIN, NOW)
    assert occ is not None and occ.data == {"date": "2027-06-01"} and occ.at > NOW
    long_ago = date_occurrence(signup, {"created_at": datetime(2020, 6, 3, tzinfo=UTC)}, BERLIN, NOW)
    assert long_ago is not None and long_ago.data == {"date": "2026-06-03"}  # then every year


def test_a_date_field_plus_an_offset() -> None:
    after = DateTrigger.model_validate({"date": "last_order_at", "offset": "90d", "at": "10:00"})
    occ = date_occurrence(after, {"last_order_at": datetime(2026, 3, 1, 23, 30, tzinfo=UTC)}, BERLIN, NOW)
    assert occ is not None and occ.at == datetime(2026, 5, 31, 8, tzinfo=UTC)  # 2 March in Berlin + 90 days
    before = DateTrigger.model_validate({"date": "traits.warranty_until", "offset": "-30d"})
    occ = date_occurrence(before, {"traits": {"warranty_until": "2026-07-01"}}, BERLIN, NOW)
    assert occ is not None and occ.at == datetime(2026, 6, 1, 7, tzinfo=UTC)


def test_a_date_trigger_schedules_enters_when_due_and_schedules_the_next_year() -> None:
    j = journey(trigger={"date": "traits.birthday", "yearly": True})
    person = customer(traits={"birthday": "1990-06-03"})
    occ = date_occurrence(birthday(), person.view, BERLIN, NOW)
    assert occ is not None
    assert on_trigger(j, None, occ, person, NOW) == (None, [Schedule("P1", "j", occ.at)])
    state, effects = on_trigger(j, None, occ, person, occ.at + timedelta(minutes=1))
    assert state is not None and state.occurrence == "date:traits.birthday:2026-06-03"
    assert [type(e) for e in effects if isinstance(e, Send | Schedule)] == [Send, Schedule]
    assert effects[-1] == Schedule("P1", "j", datetime(2027, 6, 3, 7, tzinfo=UTC))
    stale = on_trigger(j, None, occ, person, occ.at + timedelta(days=2))
    assert stale == (None, [])  # read too late: not an occasion any more


def test_an_occurrence_key_from_a_property_and_the_state_key_of_parallel_journeys() -> None:
    j = journey(trigger={"event": "social.mention", "occurrence": "message_id"}, reentry="parallel")
    first = event_occurrence("social.mention", "ev1", {"message_id": "m1"}, NOW)
    again = event_occurrence("social.mention", "ev2", {"message_id": "m1"}, NOW)
    assert occurrence_key(j.trigger, first) == occurrence_key(j.trigger, again) == "social.mention:message_id=m1"
    assert state_key(j, "P1", first) == "j:P1:social.mention:message_id=m1"
    assert state_key(journey(), "P1", first) == "j:P1"


def test_a_field_of_several_dates_fires_for_each_in_turn() -> None:
    j = journey(trigger={"date": "warranty_ends", "offset": "-30d"}, reentry="parallel")
    ends = (datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 8, 31, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
    person = customer(warranty_ends=ends)
    trigger = DateTrigger.model_validate({"date": "warranty_ends", "offset": "-30d"})
    occ = date_occurrence(trigger, person.view, BERLIN, NOW)  # 1 May is long past: 1 July's is due this morning
    assert occ is not None and (occ.id, occ.at) == (
        "date:warranty_ends:2026-06-01",
        datetime(2026, 6, 1, 7, tzinfo=UTC),
    )
    _, effects = on_trigger(j, None, occ, person, occ.at + timedelta(minutes=1))
    assert effects[-1] == Schedule("P1", "j", datetime(2026, 8, 1, 7, tzinfo=UTC))  # the next end, 30 days before
    last = date_occurrence(trigger, person.view, BERLIN, datetime(2026, 8, 1, 8, tzinfo=UTC))
    assert last is not None
    _, effects = on_trigger(j, None, last, person, last.at + timedelta(minutes=1))
    assert not any(isinstance(e, Schedule) for e in effects)  # none after the last
    assert date_occurrence(trigger, customer(warranty_ends=()).view, BERLIN, NOW) is None
