"""A table's writes held back: reads see them at once, the table only after ``write_through``, as JSON."""

from __future__ import annotations

import tracemalloc
from typing import Any

from services.notifier.journeys.staging import Staged


def test_reads_see_held_writes_and_deletions_the_table_only_after_write_through() -> None:
    table: dict[str, Any] = {"a": b"1", "b": b"2"}
    staged = Staged(table)
    staged["a"], staged["c"] = 10, 3
    del staged["b"]
    assert (staged.get("a"), staged.get("b"), staged.get("c"), staged.get("x", "none")) == (10, None, 3, "none")
    assert sorted(staged.items()) == [("a", 10), ("c", 3)] and len(staged) == 2
    assert table == {"a": b"1", "b": b"2"}  # untouched until the record's effects are out
    staged.write_through()
    assert table == {"a": b"10", "c": b"3"} and not staged.held and len(staged) == 2
    assert staged["a"] == 10 and staged.get("c") == 3  # decoded when read


def test_the_length_counts_held_writes_and_deletions_of_new_and_known_keys_once() -> None:
    staged = Staged({"a": b"1", "b": b"2", "c": b"3"})
    staged["a"], staged["x"], staged["y"] = 10, 1, 2  # a known key rewritten, two new ones
    del staged["b"]
    del staged["y"]  # a new key written and deleted
    staged["z"] = 0
    del staged["z"]
    assert len(staged) == len(list(staged)) == 3  # a, c, x
    staged.write_through()
    assert len(staged) == 3


def test_a_key_written_and_deleted_in_one_record_leaves_no_trace() -> None:
    table: dict[str, Any] = {}
    staged = Staged(table)
    staged["k"] = 1
    del staged["k"]
    staged.write_through()
    assert table == {}


def test_a_written_value_takes_the_memory_of_its_json_not_of_an_encoder_buffer() -> None:
    table: dict[str, Any] = {}
    staged = Staged(table)
    tracemalloc.start()
    try:
        for i in range(1_000):
            staged[f"k{i}"] = {"step": i}
        staged.write_through()
        staged.held.clear()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(table) == 1_000 and table["k7"] == b'{"step":7}'
    assert held < 300_000, f"{held:,} bytes for 1,000 values of about 50 bytes each"
