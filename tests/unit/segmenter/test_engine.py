"""One profile change at a time: the field index, replays, merges, and the clock (injected)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crmhub.core.conditions.fields import SegmentSource
from crmhub.core.conditions.language import compile_segment
from services.segmenter.engine import Catalog, Outcome, Prior, evaluate_change

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class Counting:
    """A catalog whose conditions count how often they are evaluated."""

    def __init__(self, **conditions: str) -> None:
        self.catalog = Catalog(compile_segment(name, cond) for name, cond in conditions.items())
        self.calls: dict[str, int] = dict.fromkeys(conditions, 0)
        for d in self.catalog.defs:
            original = d.test

            def counted(view: dict[str, Any], now: datetime, name: str = d.name, original: Any = original) -> Any:
                self.calls[name] += 1
                return original(view, now)

            object.__setattr__(d, "test", counted)


def source(doc: dict[str, Any]) -> Any:
    return SegmentSource.model_validate(doc)


def change(catalog: Catalog, profile: dict[str, Any], prior: Prior | None, members: set[str], **kw: Any) -> Outcome:
    out = evaluate_change(catalog, source({"profile_id": "P", **profile}), prior, members, kw.pop("now", NOW), **kw)
    assert out is not None
    return out


def test_a_new_profile_is_evaluated_against_every_segment() -> None:
    c = Counting(big="total_spent >= 500", unhappy="open_complaints > 0")
    out = change(c.catalog, {"version": 1, "total_spent": "600"}, None, set())
    assert (out.entered, out.exited, sorted(out.after), out.evaluated) == (["big"], [], ["big"], 2)
    assert c.calls == {"big": 1, "unhappy": 1}


def test_only_segments_reading_a_changed_field_are_evaluated() -> None:
    c = Counting(big="total_spent >= 500", unhappy="open_complaints > 0", carts="cart_items > 0")
    first = change(c.catalog, {"version": 1, "total_spent": "600"}, None, set())
    complaint = {
        "version": 2,
        "total_spent": "600",
        "open_complaints": [
            {"message_id": "m", "platform": "x", "handle": "@a", "text": "t", "at": "2026-06-01T00:00:00+00:00"}
        ],
    }
    second = change(c.catalog, complaint, first.prior, set(first.after))
    assert (second.entered, sorted(second.after), second.evaluated) == (["unhappy"], ["big", "unhappy"], 1)
    assert c.calls == {"big": 1, "unhappy": 2, "carts": 1}
    # nothing a condition reads changed: nothing evaluated, nothing published
    third = change(c.catalog, {**complaint, "version": 3, "product_views": 4}, second.prior, set(second.after))
    assert (third.entered, third.exited, third.evaluated, third.after) == ([], [], 0, second.after)


def test_clock_dependent_segments_are_evaluated_once_their_flip_time_has_come() -> None:
    c = Counting(lapsed="order_count > 0 and days_since(last_order_at) >= 90", big="total_spent >= 500")
    last = NOW - timedelta(days=90) + timedelta(seconds=5)
    profile = {"version": 1, "order_count": 1, "last_order_at": last.isoformat()}
    first = change(c.catalog, profile, None, set())
    assert (first.after, first.due) == (frozenset(), NOW + timedelta(seconds=5))
    # a change before the flip time, of a field lapsed does not read: lapsed cannot have changed
    early = change(c.catalog, {**profile, "version": 2, "total_spent": "600"}, first.prior, set(first.after),
                   now=NOW + timedelta(seconds=4))  # fmt: skip
    assert (early.entered, early.evaluated) == (["big"], 1)
    # the tick: the same version, read again when due, with the clock past the flip time
    tick = change(c.catalog, {**profile, "version": 2, "total_spent": "600"}, early.prior, set(early.after),
                  now=NOW + timedelta(seconds=5))  # fmt: skip
    assert (tick.entered, tick.evaluated, tick.due) == (["lapsed"], 1, last + timedelta(days=91))
    assert c.calls == {"lapsed": 2, "big": 2}


def test_a_replayed_older_change_is_skipped_and_the_same_version_again_changes_nothing() -> None:
    catalog = Catalog([compile_segment("big", "total_spent >= 500")])
    out = change(catalog, {"version": 5, "total_spent": "600"}, None, set())
    assert (
        evaluate_change(catalog, source({"profile_id": "P", "version": 4, "total_spent": "0"}), out.prior, {"big"}, NOW)
        is None
    )
    again = change(catalog, {"version": 5, "total_spent": "600"}, out.prior, {"big"})
    assert (again.entered, again.exited) == ([], [])


def test_forced_segments_are_evaluated_whatever_changed() -> None:
    c = Counting(big="total_spent >= 500", unhappy="open_complaints > 0")
    first = change(c.catalog, {"version": 1, "total_spent": "600"}, None, set())
    backfill = change(c.catalog, {"version": 1, "total_spent": "600"}, first.prior, set(), force={"big"})
    assert (backfill.entered, backfill.evaluated) == (["big"], 1)


def test_segments_no_longer_defined_are_left_and_merged_profiles_leave_everything() -> None:
    catalog = Catalog([compile_segment("big", "total_spent >= 500")])
    first = change(catalog, {"version": 1, "total_spent": "600"}, None, {"deleted"})
    assert (first.entered, first.exited) == (["big"], ["deleted"])
    merged = change(catalog, {"version": 2, "total_spent": "600", "merged_into": "Q"}, first.prior, {"big"})
    assert (merged.exited, merged.after, merged.due) == (["big"], frozenset(), None)


def test_prior_round_trips_and_one_of_other_fields_means_evaluate_everything() -> None:
    catalog = Catalog([compile_segment("big", "total_spent >= 500")])
    prior = change(catalog, {"version": 7, "total_spent": "1"}, None, set()).prior
    assert prior.hashes and len(prior.hashes) == len(catalog.fields) == 1  # only the fields segments read
    assert Prior.decode(prior.encode()) == (prior, len(prior.encode()))
    assert Prior.decode(b"short") is None
    # definitions reading other fields: every segment is evaluated, the version still guards replays
    wider = Counting(big="total_spent >= 500", carts="cart_items > 0")
    out = change(wider.catalog, {"version": 8, "total_spent": "1"}, prior, set())
    assert (out.evaluated, wider.calls) == (2, {"big": 1, "carts": 1})
    assert evaluate_change(wider.catalog, source({"profile_id": "P", "version": 6}), prior, set(), NOW) is None
