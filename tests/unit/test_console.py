"""The plain status line: every input is counted once, so in = forwarded + dead + duplicates."""

from __future__ import annotations

from crmhub.console import plain_line


def test_in_counts_raw_inputs_of_every_source_and_requests_the_collector_refused() -> None:
    counts = {"ingest.in.web": 5, "ingest.in.pos": 3, "ingest.in.http": 2, "ingest.out": 6, "ingest.deadletters": 3}
    counts["ingest.duplicates"] = 1
    line = plain_line(counts, 12.0)
    assert line.startswith("[    12 s] in=10 forwarded=6 dead=3 dup=1 ")


def test_alerts_of_every_kind_are_added_up() -> None:
    counts = {"notifier.alerts.cart_abandoned": 2, "notifier.alerts.complaint_escalated": 1}
    counts["notifier.alerts.payment_failed"] = 4
    assert plain_line(counts, 1.0).endswith(" alerts=7")
