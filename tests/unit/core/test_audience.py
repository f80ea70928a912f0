"""A segment's audience sync setting: parsed, checked, stored and read from the file and SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmhub.core.audience import AudienceSync, current_syncs, parse_sync, sync_json
from crmhub.core.errors import ConfigError
from crmhub.core.sql import make_engine
from services.segmenter.rules import parse_definitions
from services.segmenter.store import SegmentStore


def test_a_setting_takes_a_duration_and_writes_it_back() -> None:
    sync = parse_sync({"webhook": "ads", "batch": 100, "every": "1m30s"}, "vip")
    assert sync == AudienceSync(webhook="ads", batch=100, every=timedelta(seconds=90))
    assert parse_sync(sync_json(sync), "vip") == sync
    assert parse_sync({"webhook": "ads"}, "vip") == AudienceSync(webhook="ads", batch=500, every=timedelta(minutes=1))


@pytest.mark.parametrize(
    ("raw", "wrong"),
    [
        ({"batch": 10}, "webhook"),
        ({"webhook": "ads", "batch": 0}, "batch"),
        ({"webhook": "ads", "every": "soon"}, "every"),
        ({"webhook": "ads", "every": "0s"}, "every"),
        ({"webhook": "ads", "url": "http://x"}, "url"),
    ],
)
def test_a_bad_setting_is_an_error_naming_the_segment_and_the_field(raw: dict[str, object], wrong: str) -> None:
    with pytest.raises(ConfigError, match=rf"segment 'vip': bad sync setting: {wrong}"):
        parse_sync(raw, "vip")


def test_the_segment_file_is_refused_with_a_bad_setting() -> None:
    text = "segments:\n  - {name: vip, condition: total_spent > 1, sync: {webhook: ads, batch: -1}}\n"
    with pytest.raises(ConfigError, match=r"segments\.yaml: segment 'vip': bad sync setting: batch"):
        parse_definitions(text, "segments.yaml")


def test_settings_come_from_the_file_and_the_api_the_file_first(tmp_path: Path) -> None:
    path = tmp_path / "segments.yaml"
    path.write_text(
        "segments:\n"
        "  - {name: vip, condition: total_spent > 1, sync: {webhook: ads}}\n"
        "  - {name: plain, condition: total_spent > 2}\n"
    )
    store = SegmentStore(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    now = datetime.now(UTC)
    store.put("vip", "", "total_spent > 5", now, sync_json(AudienceSync(webhook="shadowed")))
    store.put("api_made", "", "total_spent > 5", now, sync_json(AudienceSync(webhook="mail", batch=10)))
    store.put("no_sync", "", "total_spent > 5", now)
    found = current_syncs(path, store.engine)
    assert found == {"vip": AudienceSync(webhook="ads"), "api_made": AudienceSync(webhook="mail", batch=10)}
