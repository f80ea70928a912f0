"""When the journal may forget records: checkpoints that ingest, then the profile store, passed."""

from __future__ import annotations

from crmhub.core.checkpoint import Checkpoint, Progress, passed_ingest, passed_profile

WEB0, WEB1 = ("crm.raw.web.v1", 0), ("crm.raw.web.v1", 1)


def test_ingest_passed_a_checkpoint_when_its_committed_offsets_are_beyond_every_raw_offset() -> None:
    cp = Checkpoint(10, {WEB0: 4, WEB1: 9})
    assert not passed_ingest(cp, {WEB0: 5, WEB1: 9})  # offset 9 of partition 1 not yet read
    assert not passed_ingest(cp, {WEB0: 5})
    assert passed_ingest(cp, {WEB0: 5, WEB1: 10})


def test_the_profile_store_passed_a_checkpoint_when_its_offsets_reach_the_events_ends() -> None:
    assert not passed_profile(Checkpoint(10, {}), {0: 100})  # ingest has not passed it yet
    cp = Checkpoint(10, {}, events={0: 7, 1: 3})
    assert not passed_profile(cp, {0: 7, 1: 2})
    assert passed_profile(cp, {0: 7, 1: 3})


def test_progress_trims_only_through_checkpoints_both_stages_passed_in_order() -> None:
    p = Progress(folded=0).taken(5, {WEB0: 4}).taken(5, {WEB0: 4}).taken(9, {WEB0: 8})
    assert [cp.seq for cp in p.pending] == [5, 9]  # nothing acknowledged since 5: no second checkpoint at 5
    first = p.waiting_for_ingest()
    assert first is not None and first.seq == 5
    p = p.ingest_passed(first, {0: 12})
    second = p.waiting_for_ingest()
    assert second is not None and second.seq == 9
    assert p.profile_reached({0: 11}).folded == 0
    p = p.profile_reached({0: 12})
    assert p.folded == 5 and [cp.seq for cp in p.pending] == [9]
    assert p.profile_reached({0: 10**6}).folded == 5  # the second one still waits for ingest


def test_no_checkpoint_is_taken_below_what_is_folded() -> None:
    assert Progress(folded=20).taken(20, {WEB0: 1}).pending == ()
