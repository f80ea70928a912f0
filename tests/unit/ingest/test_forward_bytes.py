"""The fast paths of ingest's forwarding produce exactly what the plain ones did."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson
from kafka.partitioner.default import murmur2

from crmhub.core.kafka import murmur2_fast
from crmhub.demo.traffic import RetailSimulator
from services.ingest.app import stamped
from services.ingest.decode import RawInput, Rejection, decode_raw
from services.ingest.identity import Resolution


def test_murmur2_fast_is_kafkas_murmur2() -> None:
    rnd = random.Random(7)
    keys = [rnd.randbytes(rnd.randrange(0, 70)) for _ in range(3000)]
    keys += [b"", b"a", b"ab", b"abc", b"\xff" * 7, b"6f1c0b0e-5c1a-4d8e-9a55-63726d687562"]
    for key in keys:
        assert murmur2_fast(key) == murmur2(key)


def test_stamped_is_the_dump_of_a_stamped_copy() -> None:
    now = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    sim = RetailSimulator(seed=3, customers=200)
    checked = 0
    for i, item in enumerate(sim.next_batch(now, 400)):
        value = item.payload if isinstance(item.payload, bytes) else orjson.dumps(item.payload)
        event = decode_raw(RawInput(item.source, value, now))
        if isinstance(event, Rejection):
            continue
        limited = tuple(event.identifiers().items())[:1] if i % 3 == 0 else ()
        res = Resolution("p-1", limited=limited)
        update = {"profile_id": "p-1", **{kind: None for kind, _ in limited}}
        expected = event.model_copy(update=update).model_dump_json().encode()
        assert stamped(event, res) == expected
        checked += 1
    assert checked > 300
