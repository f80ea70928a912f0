"""The segmenter's wiring on an in-memory harness: a plain-dict membership record, the profile changes as
the topic carries them (JSON bytes), SQL in memory, a list for the published segment changes, a testing
clock. A change is evaluated once, published, recorded; a replayed older version moves nothing; a bad
record goes to the runtime's guard, not through the agent."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from crmhub.core import topics
from crmhub.core.effects import Effect, Publish
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from schemas.outputs import SegmentChange
from schemas.readmodels.profiles import ProfileReader
from services.segmenter.app import Segmenter, change_record
from services.segmenter.engine import Outcome, Prior
from services.segmenter.store import SegmentStore

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


class Membership:
    """What the segmenter reads and writes of its Redis record, in dicts."""

    def __init__(self) -> None:
        self.priors: dict[str, Prior] = {}
        self.members: dict[str, set[str]] = {}

    async def read(self, partition: int, pids: Sequence[str]) -> tuple[dict[str, Prior | None], dict[str, set[str]]]:
        return {p: self.priors.get(p) for p in pids}, {p: set(self.members.get(p, set())) for p in pids}

    async def write(self, partition: int, outcomes: Sequence[Outcome], changes: int) -> tuple[int, int]:
        for out in outcomes:
            self.priors[out.profile_id], self.members[out.profile_id] = out.prior, set(out.after)
        return len(outcomes), 0


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        path = tmp_path / "segments.yaml"
        path.write_text(SEGMENTS)
        engine = make_engine("sqlite://")
        self.membership = Membership()
        self.published: list[SegmentChange] = []
        self.segmenter = Segmenter(
            Settings(segments_file=path, partitions=2),
            self.membership,  # type: ignore[arg-type]
            ProfileReader(engine),
            SegmentStore(engine),
            self.carry_out,
            lambda: NOW,
        )

    async def carry_out(self, effects: Sequence[Effect]) -> None:
        records = [e for e in effects if isinstance(e, Publish)]
        assert {(r.topic, r.key) for r in records} <= {(topics.SEGMENTS, b"P")}
        self.published += [SegmentChange.model_validate_json(r.value) for r in records]

    def changed(self, *docs: dict[str, Any]) -> list[str]:
        return asyncio.run(self.segmenter.apply_record(0, orjson.dumps(docs)))

    def entered(self) -> list[tuple[str, str, str]]:
        return [(c.profile_id, c.segment, c.change) for c in self.published]


SEGMENTS = (
    "segments:\n  - {name: big, condition: 'total_spent >= 500'}\n  - {name: carts, condition: 'cart_items > 0'}\n"
)


def doc(version: int, spent: str) -> dict[str, Any]:
    at = NOW.isoformat()
    return {"profile_id": "P", "version": version, "created_at": at, "updated_at": at, "total_spent": spent}


def test_a_change_is_evaluated_published_and_recorded_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    assert h.changed(doc(1, "600")) == []
    assert h.entered() == [("P", "big", "entered")]
    assert h.membership.members["P"] == {"big"}
    h.changed(doc(2, "600"))  # nothing a segment reads changed
    assert h.entered() == [("P", "big", "entered")]
    h.changed(doc(3, "100"))
    assert h.entered()[-1] == ("P", "big", "exited")


def test_a_replayed_older_version_moves_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.changed(doc(5, "600"))
    assert h.changed(doc(4, "10")) == ["P"]  # stale: reported, not evaluated
    assert h.membership.members["P"] == {"big"}
    assert len(h.published) == 1


def test_the_last_change_of_a_profile_in_a_batch_counts(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.changed(doc(2, "600"), doc(1, "10"), doc(3, "700"))
    assert h.entered() == [("P", "big", "entered")]
    assert h.membership.priors["P"].version == 3


def test_a_document_that_is_not_a_profile_is_an_error_for_the_guard(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    with pytest.raises(ValueError):  # pydantic's ValidationError: poison, dead-lettered by the Guard
        h.changed({"profile_id": "P", "version": 1, "total_spent": "lots"})
    assert h.published == []


@pytest.mark.parametrize("at", [NOW, NOW.replace(microsecond=123456), NOW.astimezone(timezone(timedelta(hours=2)))])
def test_a_change_record_is_what_pydantic_writes_of_the_contract(at: datetime) -> None:
    model = SegmentChange(segment="vip", profile_id="P", change="exited", at=at, profile_version=7)
    assert change_record("vip", "P", "exited", 7, at) == model.model_dump_json().encode()
