"""The intake journal on disk: records round trip, a torn tail is cut, segments roll and are trimmed, and a
reader picks up where it stopped."""

from __future__ import annotations

from pathlib import Path

from crmhub.core.journal import Entry, Journal, Reader, encode

E = Entry("crm.raw.web.v1", b"anon-1", b'{"type":"track"}', (("received_at", b"2026-12-04T10:00:00+00:00"),))


def entries(n: int, start: int = 0) -> list[Entry]:
    return [Entry("crm.raw.pos.v1", None if i % 3 == 0 else b"k%d" % i, b"v%d" % i) for i in range(start, start + n)]


def test_records_round_trip_with_keys_headers_and_binary_values(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    binary = Entry("crm.raw.pos.v1", None, bytes(range(256)), (("a", b""), ("b", b"\x00\xff")))
    assert j.append([E, binary]) == 2
    assert Reader(j, 1).read(10) == [(1, E), (2, binary)]


def test_seqs_continue_after_reopening(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.append(entries(3))
    j.close()
    j = Journal(tmp_path)
    assert j.last_seq == 3
    assert j.append(entries(2, 3)) == 5
    assert [seq for seq, _ in Reader(j, 1).read(10)] == [1, 2, 3, 4, 5]


def test_a_torn_tail_is_cut_at_reopening_and_never_read(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.append(entries(4))
    j.close()
    (_, path) = j.segments()[-1]
    whole = path.stat().st_size
    torn = encode(5, E)[:-3]  # a crash in the middle of writing record 5 (never acknowledged)
    with path.open("ab") as f:
        f.write(torn)
    j = Journal(tmp_path)
    assert j.last_seq == 4
    assert path.stat().st_size == whole
    assert j.append([E]) == 5
    assert Reader(j, 5).read(10) == [(5, E)]


def test_a_corrupt_record_ends_the_segment_where_it_starts(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.append(entries(3))
    j.close()
    (_, path) = j.segments()[-1]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last record's checksum no longer matches
    path.write_bytes(bytes(data))
    assert Journal(tmp_path).last_seq == 2


def test_segments_roll_and_trim_keeps_what_is_not_folded_and_the_current_one(tmp_path: Path) -> None:
    j = Journal(tmp_path, segment_bytes=200)
    for start in range(0, 60, 6):
        j.append(entries(6, start))
    firsts = [first for first, _ in j.segments()]
    assert len(firsts) > 3 and firsts[0] == 1
    j.trim(firsts[2] - 1)  # everything in the first two segments is folded
    assert [first for first, _ in j.segments()] == firsts[2:]
    j.trim(10**9)
    assert [first for first, _ in j.segments()] == firsts[-1:]  # never the segment being written
    assert [seq for seq, _ in Reader(j, firsts[-1]).read(100)] == list(range(firsts[-1], 61))


def test_a_reader_reads_only_new_records_and_crosses_segments(tmp_path: Path) -> None:
    j = Journal(tmp_path, segment_bytes=100)
    reader = Reader(j, 1)
    j.append(entries(5))
    got = reader.read(3)
    assert [s for s, _ in got] == [1, 2, 3]
    assert [s for s, _ in reader.read(100)] == [4, 5]
    assert reader.read(100) == []
    j.append(entries(20, 5))
    assert [s for s, _ in reader.read(100)] == list(range(6, 26))


def test_a_reader_may_start_in_the_middle_of_a_segment(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.append(entries(10))
    assert [s for s, _ in Reader(j, 7).read(100)] == [7, 8, 9, 10]
