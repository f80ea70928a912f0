"""Journeys kept in SQL (SQLite): versions numbered on, deletions kept, and the journeys in force."""

from __future__ import annotations

from pathlib import Path

import yaml

from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from services.notifier.journeys.catalog import current_journeys, parse_journey
from services.notifier.journeys.store import JourneyStore
from tests.unit.notifier.journeys.fixtures import NOW

DOC = {
    "id": "made",
    "trigger": {"event": "Order Completed"},
    "steps": [{"name": "mail", "send": "email", "consent": "email", "template": "Hi {{ profile.city }}"}],
}


def save(store: JourneyStore, doc: dict[str, object]) -> None:
    journey = parse_journey({**doc, "version": store.next_version(str(doc["id"]))})
    store.save(journey.id, journey.model_dump(mode="json"), "tok1", NOW)


def test_versions_count_on_across_a_deletion_and_the_stored_form_parses_back(tmp_path: Path) -> None:
    store = JourneyStore(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    save(store, DOC)
    save(store, {**DOC, "status": "paused"})
    assert store.delete("made", "tok2", NOW) and not store.delete("made", "tok2", NOW)
    assert store.journeys() == []
    save(store, DOC)
    (stored,) = store.journeys()
    assert stored.version == 4 and parse_journey(stored.doc) == parse_journey({**DOC, "version": 4})
    saved = store.versions("made")
    assert [(v.version, v.doc is None, v.saved_by) for v in saved] == [
        (4, False, "tok1"),
        (3, True, "tok2"),
        (2, False, "tok1"),
        (1, False, "tok1"),
    ]
    assert saved[2].doc is not None and saved[2].doc["status"] == "paused"


def test_the_file_comes_first_and_shadows_a_stored_journey_of_the_same_id(tmp_path: Path) -> None:
    store = JourneyStore(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    path = tmp_path / "journeys.yaml"
    path.write_text(yaml.safe_dump({"journeys": [{**DOC, "id": "filed"}]}))
    save(store, DOC)
    save(store, {**DOC, "id": "filed"})
    journeys, from_file = current_journeys(Settings(journeys_file=path), store)
    assert [j.id for j in journeys] == ["filed", "made"] and from_file == {"filed"}
