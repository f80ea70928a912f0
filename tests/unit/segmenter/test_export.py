"""A segment export's rows: the profile id and the contact points consented to, in CSV and JSON Lines."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from services.segmenter.export import COLUMNS, csv_line, csv_row, export_row, jsonl_row


def profile(consent: dict[str, bool], **identifiers: list[str]) -> dict[str, Any]:
    return {
        "identifiers": identifiers,
        "consent": {ch: {"marketing": {"granted": g, "at": "2026-01-01T00:00:00+00:00"}} for ch, g in consent.items()},
    }


def test_only_channels_with_marketing_consent_and_an_address_are_exported() -> None:
    doc = profile({"email": True, "sms": True, "phone": False, "post": True}, email=["a@x.test"])
    assert export_row("p1", doc) == {"profile_id": "p1", "contacts": {"email": "a@x.test", "post": None}}
    assert export_row("p2", profile({"sms": True}, email=["a@x.test"]))["contacts"] == {}  # no phone number
    assert export_row("p3", profile({"phone": False}, phone=["+4930"]))["contacts"] == {}  # no consent


def test_a_consent_for_another_purpose_is_not_marketing_consent() -> None:
    doc = {"identifiers": {"email": ["a@x.test"]}, "consent": {"email": {"service": {"granted": True}}}}
    assert export_row("p1", doc)["contacts"] == {}


def test_csv_rows_have_one_column_per_channel_and_quote_what_needs_it() -> None:
    header = csv_line(*COLUMNS)
    rows = [
        csv_row({"profile_id": "p1", "contacts": {"email": 'a,"b"@x.test', "push": None}}),
        csv_row({"profile_id": "p2", "contacts": {}}),
    ]
    read = list(csv.DictReader(io.StringIO((header + b"".join(rows)).decode())))
    assert list(read[0]) == ["profile_id", "email", "sms", "phone", "push", "post"]
    assert read[0] == {
        "profile_id": "p1",
        "email": 'a,"b"@x.test',
        "sms": "",
        "phone": "",
        "push": "consented",
        "post": "",
    }
    assert set(read[1].values()) == {"p2", ""}


def test_jsonl_rows_are_one_json_document_a_line() -> None:
    row = {"profile_id": "p1", "contacts": {"sms": "+4930"}}
    line = jsonl_row(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == row
