"""The read models other services read the profile service's and the segmenter's state through."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine

from crmhub.core.sql import make_engine
from schemas.events import Event
from schemas.profile import Profile
from schemas.readmodels.profiles import (
    CACHE_PREFIX,
    ProfileCache,
    ProfileReader,
    cached_doc,
    current_profile,
    full_doc,
    profile_doc,
    whole_doc,
)
from schemas.readmodels.segments import profile_segments_key, segments_of
from schemas.tables import profiles
from services.profile.fold import fold_events
from tests.unit import factories as f

T = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


class DictRedis:
    """The few synchronous redis-py calls the readers make, on plain dicts."""

    def __init__(self, values: dict[str, bytes] | None = None, sets: dict[str, set[bytes]] | None = None) -> None:
        self.values, self.sets = values or {}, sets or {}

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.values.get(key) for key in keys]

    def smembers(self, key: str) -> set[bytes]:
        return self.sets.get(key, set())

    def set(self, key: str, value: bytes, ex: int) -> None:  # a pipeline's too: put_many's writes
        self.values[key] = value


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    yield eng
    eng.dispose()


def profile(pid: str, version: int = 1, merged_into: str | None = None) -> Profile:
    return Profile(profile_id=pid, version=version, created_at=T, updated_at=T, merged_into=merged_into)


def write(engine: Engine, *docs: Profile) -> None:
    rows = [
        {"profile_id": p.profile_id, "version": p.version, "updated_at": T, "doc": p.model_dump_json()} for p in docs
    ]
    with engine.begin() as conn:
        conn.execute(profiles.insert(), rows)


def test_reader_loads_counts_and_walks_every_profile_in_id_order(engine: Engine) -> None:
    write(engine, profile("p2"), profile("p1"), profile("p3"))
    reader = ProfileReader(engine)
    assert reader.count() == 3
    assert sorted(reader.load(["p1", "p3", "nobody"])) == ["p1", "p3"]
    assert [p.profile_id for p in reader.iter_profiles(chunk=2)] == ["p1", "p2", "p3"]


def test_current_profile_follows_merges_and_prefers_the_cache(engine: Engine) -> None:
    write(engine, profile("absorbed", merged_into="survivor"), profile("survivor", version=1))
    cache = ProfileCache(
        DictRedis({CACHE_PREFIX + "survivor": profile("survivor", version=2).model_dump_json().encode()})
    )
    found = current_profile(cache, ProfileReader(engine), "absorbed")
    assert found is not None and (found.profile_id, found.version) == ("survivor", 2)
    assert current_profile(cache, ProfileReader(engine), "nobody") is None


@pytest.mark.parametrize("shape", ["identify only", "orders, consent, complaint, payment failure"])
def test_the_cache_holds_a_compressed_document_and_reads_back_the_profile(shape: str) -> None:
    redis = DictRedis()
    doc = profile_doc(SHAPES[shape])
    ProfileCache(redis).put_many(redis, {"p1": doc})
    entry = redis.values[CACHE_PREFIX + "p1"]
    assert not entry.startswith(b"{") and len(entry) < len(doc) * 0.7
    assert cached_doc(entry) == doc
    assert ProfileCache(redis).get_many(["p1", "nobody"]) == {"p1": SHAPES[shape]}


def test_a_cache_entry_written_as_plain_json_still_reads() -> None:
    """Entries from before the cache compressed (they live an hour): no decompression error after an upgrade."""
    doc = profile_doc(SHAPES["identify only"])
    assert cached_doc(doc) == doc
    assert ProfileCache(DictRedis({CACHE_PREFIX + "p1": doc})).get_many(["p1"]) == {"p1": SHAPES["identify only"]}


def test_segments_of_a_profile_are_sorted() -> None:
    redis = DictRedis(sets={profile_segments_key("p1"): {b"vip", b"shoe_lovers"}})
    assert segments_of(redis, "p1") == ["shoe_lovers", "vip"]
    assert segments_of(redis, "p2") == []


def folded(*events: Event) -> Profile:
    return fold_events(None, "p1", events)


SHAPES = {
    "identify only": folded(f.identify({"email": "ada@example.com", "tier": "gold"})),
    "cart cleared": folded(f.added("sku-1", "10.00"), f.removed("sku-1", "10.00")),
    "orders, consent, complaint, payment failure": folded(
        f.identify({"email": "ada@example.com"}),
        f.order("o1", "120.50"),
        f.pos_sale("s1", "r1", "9.99"),
        f.consent("email"),
        f.mention("m1", complaint=True),
        f.payment_failed("card_declined", "5.00", order_id="o1"),
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_profile_document_leaves_out_defaults_and_reads_back_the_same(shape: str) -> None:
    p = SHAPES[shape]
    doc = profile_doc(p)
    whole = orjson.loads(p.model_dump_json())
    assert Profile.model_validate_json(doc) == p  # typed readers fill the defaults themselves
    assert full_doc(orjson.loads(doc)) == whole  # raw readers get every field, written as in the whole JSON
    assert orjson.loads(whole_doc(doc)) == whole
    left_out = set(whole) - set(orjson.loads(doc))
    assert left_out and all(whole[k] == full_doc({})[k] for k in left_out)
    assert len(doc) < len(p.model_dump_json())


def test_a_value_equal_to_its_default_but_written_otherwise_is_kept() -> None:
    p = profile("p1").model_copy(update={"total_spent": Decimal("0.00")})
    p = p.model_copy(update={"cart": p.cart.model_copy(update={"value": Decimal("0.00")})})
    doc = orjson.loads(profile_doc(p))
    assert doc["total_spent"] == "0.00" and doc["cart"]["value"] == "0.00"
    assert "refunded_total" not in doc and "loyalty" not in doc
