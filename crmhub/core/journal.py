"""The intake journal: what the HTTP collector acknowledged, on disk before it answers.

The embedded broker keeps records in memory only (../shared/BROKER.md), so on the embedded default a 2xx
from the collector is backed by this journal, as RudderStack's gateway writes to its jobs database before
it answers: an append-only log of segment files in ``<data dir>/journal/``, each record numbered (its
*seq*, the input's place in the journal for good) and checksummed, written and fsync'd in groups (one
fsync for every request that arrived while the previous one ran). A forwarder produces the records to
the raw topics in order (:mod:`services.ingest.forwarder`); segments are deleted once every record in
them is folded into the profile store (:mod:`crmhub.core.checkpoint`); what a lost broker held is
produced again from the journal.

A record on disk: ``length u32 · crc32 u32 · seq u64`` then the body (``length`` bytes):
``topic (u16 length + utf-8) · key (i32 length, -1 for none) · headers (u16 count, each u16 + name,
u32 + value) · value (the rest)``. A torn write at a crash leaves a record whose length or checksum does
not match: the segment is cut there when the journal is opened (that input was never acknowledged).
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_HEAD = struct.Struct(">IIQ")
_U16, _U32, _I32 = struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">i")
SEGMENT_SUFFIX = ".journal"


@dataclass(frozen=True)
class Entry:
    """One input as it goes to its raw topic."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def encode(seq: int, entry: Entry) -> bytes:
    topic = entry.topic.encode()
    parts = [_U16.pack(len(topic)), topic]
    parts += [_I32.pack(-1)] if entry.key is None else [_I32.pack(len(entry.key)), entry.key]
    parts.append(_U16.pack(len(entry.headers)))
    for name, value in entry.headers:
        raw = name.encode()
        parts += [_U16.pack(len(raw)), raw, _U32.pack(len(value)), value]
    parts.append(entry.value)
    body = b"".join(parts)
    return _HEAD.pack(len(body), zlib.crc32(body), seq) + body


def decode_body(body: bytes) -> Entry:
    (n,) = _U16.unpack_from(body, 0)
    at = 2 + n
    topic = body[2:at].decode()
    (k,) = _I32.unpack_from(body, at)
    at += 4
    key = None if k < 0 else body[at : at + k]
    at += max(k, 0)
    (count,) = _U16.unpack_from(body, at)
    at += 2
    headers = []
    for _ in range(count):
        (n,) = _U16.unpack_from(body, at)
        name = body[at + 2 : at + 2 + n].decode()
        at += 2 + n
        (v,) = _U32.unpack_from(body, at)
        headers.append((name, body[at + 4 : at + 4 + v]))
        at += 4 + v
    return Entry(topic, key, body[at:], tuple(headers))


def scan(data: bytes) -> Iterator[tuple[int, int, Entry]]:
    """(seq, end position, entry) of each whole, intact record of a segment's bytes, up to the first torn one."""
    at = 0
    while at + _HEAD.size <= len(data):
        length, crc, seq = _HEAD.unpack_from(data, at)
        body = data[at + _HEAD.size : at + _HEAD.size + length]
        if len(body) < length or zlib.crc32(body) != crc:
            return
        at += _HEAD.size + length
        yield seq, at, decode_body(body)


class Journal:
    """The segment files of one directory; one writer (the API process) at a time."""

    def __init__(self, directory: Path, segment_bytes: int = 64 * 2**20) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self.last_seq = self._recover()
        segments = self.segments()
        self._file: BinaryIO = segments[-1][1].open("ab") if segments else self._open_segment(self.last_seq + 1)

    def segments(self) -> list[tuple[int, Path]]:
        """(first seq, path) of every segment, oldest first."""
        found = [(int(p.name.removesuffix(SEGMENT_SUFFIX)), p) for p in self.directory.glob("*" + SEGMENT_SUFFIX)]
        return sorted(found)

    def _recover(self) -> int:
        """Cut a torn tail off the last segment; the last seq written (the first seq - 1 of an empty journal)."""
        segments = self.segments()
        if not segments:
            return 0
        first, path = segments[-1]
        data = path.read_bytes()
        last, end = first - 1, 0
        for seq, record_end, _ in scan(data):
            last, end = seq, record_end
        if end < len(data):
            with path.open("r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        return last

    def _open_segment(self, first_seq: int) -> BinaryIO:
        path = self.directory / f"{first_seq:020d}{SEGMENT_SUFFIX}"
        f = path.open("ab")
        _fsync_dir(self.directory)
        return f

    def append(self, entries: Sequence[Entry]) -> int:
        """Write ``entries`` with the next seqs and fsync them (the durable step); the last seq written."""
        f = self._current()
        f.write(b"".join(encode(self.last_seq + 1 + i, e) for i, e in enumerate(entries)))
        f.flush()
        os.fsync(f.fileno())
        self.last_seq += len(entries)
        return self.last_seq

    def _current(self) -> BinaryIO:
        if self._file.tell() >= self.segment_bytes:
            self._file.close()
            self._file = self._open_segment(self.last_seq + 1)
        return self._file

    def trim(self, upto_seq: int) -> int:
        """Delete the segments whose records all have seqs <= ``upto_seq`` (never the one being written);
        how many were deleted."""
        segments = self.segments()
        deleted = 0
        for (_, path), (following, _) in itertools.pairwise(segments):
            if following - 1 <= upto_seq:
                path.unlink()
                deleted += 1
        return deleted

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for _, p in self.segments())

    def close(self) -> None:
        self._file.close()


class Reader:
    """Reads a journal in order from a seq on, picking up where it stopped: each call reads only new bytes."""

    CHUNK = 4 * 2**20  # larger than any record (a collector request is at most 500 KB)

    def __init__(self, journal: Journal, seq: int) -> None:
        self.journal = journal
        self.next_seq = seq
        starts = [first for first, _ in journal.segments() if first <= seq] or [seq]
        self._first, self._offset = starts[-1], 0

    def _path(self) -> Path:
        return self.journal.directory / f"{self._first:020d}{SEGMENT_SUFFIX}"

    def read(self, limit: int) -> list[tuple[int, Entry]]:
        """Up to ``limit`` records from ``next_seq`` on, as far as the journal's ``last_seq``."""
        out: list[tuple[int, Entry]] = []
        while len(out) < limit and self.next_seq <= self.journal.last_seq:
            if not self._read_segment(out, limit):
                self._first, self._offset = self.next_seq, 0  # the current segment is done: the next one
                if not self._path().exists():
                    break
        return out

    def _read_segment(self, out: list[tuple[int, Entry]], limit: int) -> bool:
        """Read records of the current segment into ``out``; False when it holds no more records."""
        try:
            with self._path().open("rb") as f:
                f.seek(self._offset)
                data = f.read(self.CHUNK)
        except FileNotFoundError:
            return False
        consumed = 0
        for seq, end, entry in scan(data):
            consumed = end
            if seq >= self.next_seq:
                out.append((seq, entry))
                self.next_seq = seq + 1
            if len(out) >= limit or seq >= self.journal.last_seq:
                break
        self._offset += consumed
        return consumed > 0


def _fsync_dir(directory: Path) -> None:
    """A new file's name is durable once its directory is fsync'd."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
