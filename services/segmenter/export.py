"""A segment's members with the contact points they consented to, as CSV or JSON Lines, streamed.

Members are found by walking the stored profiles' ids in keyset pages (SQL) and asking Redis which of each
page are in the segment (one ``SMISMEMBER``): every member comes once, in id order, an erased profile never
(erasure deletes its row and records its id), and memory holds one page however big the segment. ``SSCAN``
of the member set was the other way: cheaper for a small segment of a large base, but it may return a
member twice and in no order, so an export would have to keep every id seen to de-duplicate.

A row is the profile id and, per channel (:data:`schemas.facets.consent.CHANNELS`), the address the
customer may be marketed at (:func:`schemas.facets.consent.consented_contacts`: marketing consent granted
and an address on the profile). In CSV a channel that needs no address (push, post) reads ``consented``;
a channel without consent or address is empty. In JSON Lines only the consented channels are listed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import orjson

from schemas.facets.consent import CHANNELS, consented_contacts
from schemas.readmodels.profiles import ProfileReader
from schemas.readmodels.segments import members_key

Format = Literal["csv", "jsonl"]
MEDIA_TYPES: dict[Format, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
COLUMNS = ("profile_id", *CHANNELS)
PAGE = 1000
NO_ADDRESS = "consented"  # CSV: a consented channel that needs no address (push, post)


def export_row(profile_id: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"profile_id": profile_id, "contacts": consented_contacts(doc)}


def csv_line(*cells: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode()


def csv_row(row: Mapping[str, Any]) -> bytes:
    contacts = row["contacts"]
    cells = [(contacts[c] or NO_ADDRESS) if c in contacts else "" for c in CHANNELS]
    return csv_line(row["profile_id"], *cells)


def jsonl_row(row: Mapping[str, Any]) -> bytes:
    return orjson.dumps(row) + b"\n"


def member_pages(reader: ProfileReader, redis: Any, segment: str, page: int = PAGE) -> Iterator[list[str]]:
    """The segment's members among each page of stored profile ids (pages without one are skipped)."""
    for ids in reader.id_pages(page):
        inside = redis.smismember(members_key(segment), ids)
        members = [pid for pid, flag in zip(ids, inside, strict=True) if flag]
        if members:
            yield members


def export_lines(reader: ProfileReader, redis: Any, segment: str, fmt: Format, page: int = PAGE) -> Iterator[bytes]:
    """The export, a page of members at a time (a member whose profile went between the two reads is left out)."""
    write = csv_row if fmt == "csv" else jsonl_row
    if fmt == "csv":
        yield csv_line(*COLUMNS)
    for members in member_pages(reader, redis, segment, page):
        docs = reader.load_docs(members)
        yield b"".join(write(export_row(pid, orjson.loads(docs[pid]))) for pid in members if pid in docs)
