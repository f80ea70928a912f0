"""The due index: due entries in time order, stale pairs skipped, rebuilt from a table."""

from __future__ import annotations

from typing import Any

from services.notifier.timers import DueIndex


def test_due_entries_come_out_once_as_the_table_has_them() -> None:
    table: dict[str, Any] = {"a": {"due": 10.0}, "b": {"due": 20.0}, "c": {"due": 5.0}}
    index = DueIndex()
    for key, doc in table.items():
        index.add(key, doc["due"])
    index.add("a", 10.0)  # written twice
    assert index.pop_due(4.9, table.get) == []
    assert index.pop_due(10.0, table.get) == [("c", {"due": 5.0}), ("a", {"due": 10.0})]
    assert index.pop_due(10.0, table.get) == []  # taken out
    assert len(index) == 1


def test_deleted_fired_and_rescheduled_entries_are_skipped() -> None:
    table: dict[str, Any] = {"fired": {"due": 1.0}, "gone": {"due": 2.0}, "later": {"due": 3.0}, "kept": {"due": 4.0}}
    index = DueIndex()
    for key, doc in table.items():
        index.add(key, doc["due"])
    table["fired"] = {"due": None}
    del table["gone"]
    table["later"] = {"due": 30.0}  # a changed cart: a new wait (added again when written)
    index.add("later", 30.0)
    assert index.pop_due(10.0, table.get) == [("kept", {"due": 4.0})]
    assert index.pop_due(30.0, table.get) == [("later", {"due": 30.0})]


def test_rebuild_from_a_recovered_table_and_when_stale_pairs_pile_up() -> None:
    index = DueIndex()
    index.add("old", 1.0)
    index.rebuild([("a", {"due": 2.0}), ("fired", {"due": None}), ("deleted", None)])
    assert len(index) == 1 and index.pop_due(5.0, {"a": {"due": 2.0}, "old": {"due": 1.0}}.get) == [("a", {"due": 2.0})]
    for n in range(1001):
        index.add("a", float(n))
    assert not index.needs_rebuild(live=1) and index.needs_rebuild(live=0)
