"""The profiles, as the profile service writes them and every other reader reads them.

Writer: the profile service (``services/profile``). Readers: the segmenter (every profile, for backfills;
changed ones by id), the notifier (the cached document of a profile, ``CACHE_PREFIX``), the API.

Two places hold a profile: the ``profiles`` table (:mod:`schemas.tables`), which is the record, and a
Redis cache of hot profiles (entries are dropped before a write and set after it). A merged profile
keeps a document whose ``merged_into`` names the profile it went into.

Both hold, and crm.profile-changes.v1 carries, the profile's document (:func:`profile_doc`): its JSON
without the top-level fields at their defaults. Most of a profile is facets a customer never used (an
``identify`` alone: 817 bytes instead of 2,872), and every profile change, stored row and cached entry
paid for them: the cache was two thirds of Redis's memory. Typed readers (pydantic) fill the defaults
themselves; readers of the decoded JSON take :func:`full_doc`. (crm.profiles.v1, for outside readers, has
whole documents.)

The cache holds the document zlib-compressed (:func:`cache_entry`, level 1: a third of the JSON's bytes,
~25 µs to write, ~9 to read). Every profile change rewrites its entry, so the entry's size is most of what
Redis appends to its append-only file (1.6 KB of 2.7 KB a demo event) and rewrites it for, and at a
million profiles the cache was a third of Redis's memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import Engine, exists, func, select

from schemas.profile import Profile
from schemas.tables import erased_profiles, profiles

CACHE_PREFIX = "crmhub:profile:"
CACHE_TTL_S = 3600
# a profile erased (set before anything of it is deleted): the notifier's journeys drop its waits, and the
# segmenter takes back membership a change already in flight wrote after the erasure
ERASED_PREFIX = "crmhub:alerts:erased:"
ERASED_TTL_S = 30 * 86400  # longer than any timer waits or a change stays in flight


_DEFAULTS = {
    name: field.get_default(call_default_factory=True)
    for name, field in Profile.model_fields.items()
    if not field.is_required()
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JSON_DEFAULTS: dict[str, Any] = {
    name: value
    for name, value in orjson.loads(
        Profile(profile_id="", created_at=_EPOCH, updated_at=_EPOCH).model_dump_json()
    ).items()
    if name in _DEFAULTS
}


def _decimals(value: Any) -> tuple[str, ...]:
    """The Decimal fields of a default model: an equal value may be written differently in JSON
    (Decimal("0.00") equals 0 but reads "0.00")."""
    return tuple(k for k, v in value.__dict__.items() if isinstance(v, Decimal))


# top-level defaults that need more than == (a model compared by its fields, a Decimal by its digits too)
_MODELS = {name: _decimals(value) for name, value in _DEFAULTS.items() if isinstance(value, BaseModel)}
_DECIMALS = frozenset(name for name, value in _DEFAULTS.items() if isinstance(value, Decimal))
_PLAIN = {name: value for name, value in _DEFAULTS.items() if name not in _MODELS and name not in _DECIMALS}


def _at_default(name: str, value: Any) -> bool:
    """Whether a model or Decimal field is at its default and written the same in JSON."""
    default = _DEFAULTS[name]
    if name in _DECIMALS:
        return bool(value == default) and str(value) == str(default)
    inner, of_default = value.__dict__, default.__dict__
    return bool(inner == of_default) and all(str(inner[k]) == str(of_default[k]) for k in _MODELS[name])


def profile_doc(profile: Profile) -> bytes:
    """The profile's document: its JSON without the top-level fields at their defaults (comparing the fields
    costs ~10 µs more than writing the whole JSON; the shorter document is read back faster)."""
    values = profile.__dict__
    left_out = {k for k, v in _PLAIN.items() if values[k] == v}
    left_out.update(k for k in (*_MODELS, *_DECIMALS) if _at_default(k, values[k]))
    return profile.model_dump_json(exclude=left_out).encode()


def full_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A decoded profile document with every top-level field (those left out at their JSON defaults). The
    defaults' containers are shared between documents: read them, never change them."""
    return {**_JSON_DEFAULTS, **doc}


def whole_doc(doc: bytes) -> bytes:
    """A profile document as whole JSON, every field written (for outside readers: crm.profiles.v1)."""
    return orjson.dumps(full_doc(orjson.loads(doc)))


def mark_erased(redis: Any, profile_id: str) -> None:
    """Record that ``profile_id`` is erased: the first step of an erasure, so that every writer that checks
    the mark after its write (the segmenter) finds it."""
    redis.set(ERASED_PREFIX + profile_id, b"1", ex=ERASED_TTL_S)


def cache_entry(doc: bytes) -> bytes:
    """A profile document as the cache holds it."""
    return zlib.compress(doc, 1)


def cached_doc(entry: bytes) -> bytes:
    """The document in a cache entry (one written before the cache compressed its entries is JSON as it is:
    a document starts with ``{``, a zlib stream never does)."""
    return entry if entry[:1] == b"{" else zlib.decompress(entry)


class ProfileCache:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def get_many(self, profile_ids: Sequence[str]) -> dict[str, Profile]:
        if not profile_ids:
            return {}
        entries = self.redis.mget([CACHE_PREFIX + pid for pid in profile_ids])
        return {
            pid: Profile.model_validate_json(cached_doc(entry))
            for pid, entry in zip(profile_ids, entries, strict=True)
            if entry
        }

    def invalidate(self, profile_ids: Iterable[str]) -> None:
        keys = [CACHE_PREFIX + pid for pid in profile_ids]
        if keys:
            self.redis.delete(*keys)

    def put_many(self, pipe: Any, docs: dict[str, bytes]) -> None:
        for pid, doc in docs.items():
            pipe.set(CACHE_PREFIX + pid, cache_entry(doc), ex=CACHE_TTL_S)


class ProfileReader:
    """Profiles read from SQL (the record)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, profile_ids: Iterable[str]) -> dict[str, Profile]:
        return {pid: Profile.model_validate_json(doc) for pid, doc in self.load_docs(profile_ids).items()}

    def load_docs(self, profile_ids: Iterable[str]) -> dict[str, str]:
        """The stored JSON documents of those profiles that exist."""
        ids = list(profile_ids)
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = conn.execute(
                    select(profiles.c.profile_id, profiles.c.doc).where(profiles.c.profile_id.in_(chunk))
                )
                found.update((pid, doc) for pid, doc in rows)
        return found

    def iter_profiles(self, chunk: int = 1000) -> Iterator[Profile]:
        """Every profile, in id order, read a chunk at a time (the whole base, for the RFM refresh)."""
        last = ""
        while True:
            query = select(profiles.c.profile_id, profiles.c.doc).where(profiles.c.profile_id > last)
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(profiles.c.profile_id).limit(chunk)).all()
            if not rows:
                return
            for _, doc in rows:
                yield Profile.model_validate_json(doc)
            last = rows[-1][0]

    def id_pages(self, chunk: int = 1000) -> Iterator[list[str]]:
        """The ids of every stored, not erased profile, in id order, a page at a time (keyset: each page
        starts after the last id of the one before, so the pages cost the same however far they go)."""
        erased = exists().where(erased_profiles.c.profile_id == profiles.c.profile_id)
        last = ""
        while True:
            query = select(profiles.c.profile_id).where(profiles.c.profile_id > last, ~erased)
            with self.engine.connect() as conn:
                ids = list(conn.execute(query.order_by(profiles.c.profile_id).limit(chunk)).scalars())
            if not ids:
                return
            yield ids
            last = ids[-1]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(profiles)).scalar_one())


def current_profile(cache: ProfileCache, reader: ProfileReader, profile_id: str) -> Profile | None:
    """The profile, or the one it was merged into (in as many steps as it takes); the cache first."""
    profile = _load_one(cache, reader, profile_id)
    while profile is not None and profile.merged_into:
        profile = _load_one(cache, reader, profile.merged_into)
    return profile


def _load_one(cache: ProfileCache, reader: ProfileReader, profile_id: str) -> Profile | None:
    cached = cache.get_many([profile_id])
    if profile_id in cached:
        return cached[profile_id]
    return reader.load([profile_id]).get(profile_id)
