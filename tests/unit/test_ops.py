"""The dashboard's figures: totals per source and service from the Redis counters, rates between snapshots."""

from __future__ import annotations

from crmhub.ops import by_label, flows, lag_by_topic, rates


def test_flows_add_up_the_sources_and_name_what_each_service_consumed() -> None:
    counts = {
        "ingest.in.web": 7,
        "ingest.in.pos": 3,
        "ingest.in.http": 1,  # refused by the collector: consumed by ingest's count, no source of its own
        "profile.events": 9,
        "segmenter.evaluated": 8,
        "notifier.profiles": 8,
    }
    got = flows(counts)
    assert got["sources"] == {"web": 7, "pos": 3, "payment": 0, "social": 0, "support": 0, "catalog": 0}
    assert got["services"] == {"ingest": 11, "profile": 9, "segmenter": 8, "notifier": 8}


def test_rates_are_the_differences_over_the_time_between_two_snapshots() -> None:
    before = {"t": 10.0, "flows": flows({"ingest.in.web": 100, "profile.events": 50})}
    after = {"t": 12.0, "flows": flows({"ingest.in.web": 160, "profile.events": 50})}
    got = rates(before, after)
    assert got["sources"]["web"] == 30.0 and got["sources"]["pos"] == 0.0
    assert got["services"]["ingest"] == 30.0 and got["services"]["profile"] == 0.0
    assert rates(after, after)["sources"]["web"] == 0.0  # no time passed: no rate, not a division by zero


def test_samples_are_added_up_per_label_value_largest_first() -> None:
    rows = [
        ({"service": "ingest", "reason": "invalid JSON"}, 2.0),
        ({"service": "profile", "reason": "no profile_id"}, 5.0),
        ({"service": "notifier", "reason": "invalid JSON"}, 4.0),
    ]
    assert list(by_label(rows, "reason").items()) == [("invalid JSON", 6), ("no profile_id", 5)]


def test_lag_rows_are_grouped_per_service_and_topic_with_their_partitions() -> None:
    rows = [
        {"service": "ingest", "topic": "crm.raw.pos.v1", "partition": 0, "lag": 3},
        {"service": "ingest", "topic": "crm.raw.pos.v1", "partition": 1, "lag": 0},
        {"service": "profile", "topic": "crm.events.v1", "partition": 0, "lag": 7},
    ]
    assert lag_by_topic(rows) == {("ingest", "crm.raw.pos.v1"): {0: 3, 1: 0}, ("profile", "crm.events.v1"): {0: 7}}
