"""The profile store on SQLite and on a real PostgreSQL server the tests start (crmhub.embedded)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from crmhub.core.sql import current_revision, make_engine, normalise_url, upgrade
from crmhub.embedded import embedded_postgres
from schemas.events import Event
from schemas.profile import Profile
from schemas.tables import consumer_offsets, identifiers, metadata, profiles, report_cohorts, report_sales
from services.profile.reports import ReportDeltas
from services.profile.store import Expect, Fenced, ProfileStore, StaleProfiles
from services.profile.timeline import TIMELINE_CAP
from tests.unit import factories as f

T = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
HEAD = "0010"  # the newest revision; bump with each migration


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("postgres") / "postgres.log"
    with embedded_postgres(log) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database: a new SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    server: str = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    eng = make_engine(url)
    yield eng
    eng.dispose()


def profile(pid: str, version: int = 1, spent: str = "0") -> Profile:
    return Profile(
        profile_id=pid,
        version=version,
        created_at=T,
        updated_at=T,
        order_count=version,
        total_spent=Decimal(spent),
        identifiers={"customer_id": [f"c-{pid}"]},
    )


def test_migrations_make_exactly_the_tables_the_store_queries(engine: Engine) -> None:
    assert current_revision(engine) == HEAD
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_again_changes_nothing(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == HEAD


def test_a_store_made_before_migrations_is_stamped_not_recreated(url: str) -> None:
    old = make_engine(url, migrate=False)
    baseline = MetaData()  # the baseline's tables: the profiles without the columns 0009 added
    Table("profiles", baseline, *(c._copy() for c in profiles.columns if c.name not in ("currency", "net_units")))
    metadata.create_all(old, tables=[identifiers, consumer_offsets])
    baseline.create_all(old)
    stored = profile("p1").model_copy(update={"currency": "EUR", "net_revenue": Decimal("12.5")})
    with old.begin() as conn:
        conn.execute(baseline.tables["profiles"].insert(), [{"profile_id": "p1", "version": 1, "updated_at": T,
                                                             "doc": stored.model_dump_json()}])  # fmt: skip
    upgrade(old)
    assert current_revision(old) == HEAD
    assert ProfileStore(old).load(["p1"])["p1"] == stored
    with old.connect() as conn:  # the top customers' columns filled from the stored profile
        assert conn.execute(select(profiles.c.currency, profiles.c.net_units)).all() == [("EUR", 125_000)]
    old.dispose()


def test_instances_starting_at_once_migrate_once(url: str) -> None:
    engines = [make_engine(url, migrate=False) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(engines))

    def run(eng: Engine) -> None:
        start.wait()
        try:
            upgrade(eng)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(eng,)) for eng in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert current_revision(engines[0]) == HEAD
    assert {"profiles", "identifiers", "consumer_offsets"} <= set(inspect(engines[0]).get_table_names())
    for eng in engines:
        eng.dispose()


def test_profiles_identifiers_and_offsets_round_trip(engine: Engine) -> None:
    store = ProfileStore(engine)
    store.save(
        [profile("p1", 1, "10.50"), profile("p2", 2, "3")],
        [("email", "a@example.com", "p1"), ("email", "b@example.com", "p2")],
        "grp",
        "inc-1",
        {("crm.events.v1", 0): 5, ("crm.events.v1", 3): 7},
    )
    store.save(
        [profile("p1", 3, "99.99")], [("email", "b@example.com", "p1")], "grp", "inc-1", {("crm.events.v1", 0): 9}
    )
    loaded = store.load(["p1", "p2", "missing"])
    assert loaded == {"p1": profile("p1", 3, "99.99"), "p2": profile("p2", 2, "3")}
    assert loaded["p1"].total_spent == Decimal("99.99")
    assert store.profile_id_for("email", "a@example.com") == "p1"
    assert store.profile_id_for("email", "b@example.com") == "p1"  # re-linked
    assert store.profile_id_for("email", "nobody@example.com") is None
    assert store.offsets("grp", "crm.events.v1", "inc-1") == {0: 9, 3: 7}
    assert store.offsets("grp", "crm.events.v1", "inc-2") == {}  # another incarnation of the topic: stale
    assert store.offsets("other", "crm.events.v1", "inc-1") == {}


def test_one_identifier_named_twice_in_a_batch_is_written_once(engine: Engine) -> None:
    store = ProfileStore(engine)
    store.save([], [("email", "x@example.com", "p1"), ("email", "x@example.com", "p2")], "g", "i", {})
    assert store.profile_id_for("email", "x@example.com") == "p2"


def test_a_failed_save_writes_nothing_not_even_the_profiles(engine: Engine) -> None:
    store = ProfileStore(engine)
    store.save([profile("p1", 1, "1")], [], "grp", "inc", {("t", 0): 1})
    with pytest.raises(IntegrityError):  # the offsets row breaks NOT NULL, after the profile rows went in
        store.save([profile("p1", 2, "2")], [("email", "e@x.io", "p1")], "grp", None, {("t", 0): 2})  # type: ignore[arg-type]
    assert store.load(["p1"])["p1"] == profile("p1", 1, "1")
    assert store.profile_id_for("email", "e@x.io") is None
    assert store.offsets("grp", "t", "inc") == {0: 1}


def test_a_large_batch_is_written_and_read_in_chunks(engine: Engine) -> None:
    store = ProfileStore(engine)
    many = [profile(f"p{i}", 1, str(i)) for i in range(2500)]
    store.save(many, [("customer_id", f"c-p{i}", f"p{i}") for i in range(2500)], "g", "i", {("t", 0): 2500})
    loaded = store.load(p.profile_id for p in many)
    assert len(loaded) == 2500 and loaded["p2499"].total_spent == Decimal(2499)


def test_iter_profiles_reads_every_profile_once_in_chunks(engine: Engine) -> None:
    store = ProfileStore(engine)
    store.save([profile(f"p{i:02d}", 1, str(i)) for i in range(25)], [], "g", "i", {})
    seen = [p.profile_id for p in store.iter_profiles(chunk=7)]
    assert seen == [f"p{i:02d}" for i in range(25)]


def test_postgres_urls_use_psycopg_3() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def viewed(event_id: str, minutes: float) -> Event:
    return f.viewed("p-1", "9.99", event_id=event_id, minutes=minutes)


def test_the_timeline_is_newest_first_and_a_replay_stores_nothing_twice(engine: Engine) -> None:
    store = ProfileStore(engine)
    batch = [("p1", viewed("e1", 1)), ("p1", viewed("e2", 3)), ("p2", viewed("e3", 2))]
    store.save([profile("p1"), profile("p2")], [], "g", "i", {}, batch)
    store.save([profile("p1")], [], "g", "i", {}, batch[:2])  # the replay of a batch
    p1 = store.timeline("p1")
    assert [e["event_id"] for e in p1] == ["e2", "e1"]
    assert p1[0]["type"] == "Product Viewed" and p1[0]["source"] == "web"
    assert p1[0]["occurred_at"] == f.at(3)  # aware, in UTC
    assert [e["event_id"] for e in store.timeline("p1", limit=1)] == ["e2"]
    assert [e["event_id"] for e in store.timeline("p1", offset=1)] == ["e1"]
    assert [e["event_id"] for e in store.timeline("p1", before=f.at(3))] == ["e1"]
    assert store.timeline("nobody") == []


def test_a_timeline_keeps_its_newest_events(engine: Engine) -> None:
    store = ProfileStore(engine)
    batch = [("p1", viewed(f"e{i}", i)) for i in range(TIMELINE_CAP + 5)]
    store.save([profile("p1")], [], "g", "i", {}, batch[:100])
    store.save([profile("p1")], [], "g", "i", {}, [*batch[100:], ("p2", viewed("other", 0))])
    kept = store.timeline("p1")
    assert len(kept) == TIMELINE_CAP
    assert kept[-1]["event_id"] == "e5" and kept[0]["event_id"] == f"e{TIMELINE_CAP + 4}"
    assert len(store.timeline("p2")) == 1


def test_a_merge_moves_the_absorbed_timeline_to_the_survivor(engine: Engine) -> None:
    store = ProfileStore(engine)
    store.save([], [], "g", "i", {}, [("a", viewed("e1", 1)), ("a", viewed("both", 2)), ("s", viewed("both", 2))])
    store.save([], [], "g", "i", {}, [("s", viewed("e3", 3))], {"a": "s"})
    assert [e["event_id"] for e in store.timeline("s")] == ["e3", "both", "e1"]
    assert store.timeline("a") == []


def test_erase_deletes_the_profile_its_identifiers_and_timeline(engine: Engine) -> None:
    store = ProfileStore(engine)
    store.save(
        [profile("p1"), profile("p2")],
        [("email", "a@example.com", "p1"), ("customer_id", "c-p1", "p1"), ("email", "b@example.com", "p2")],
        "g",
        "i",
        {},
        [("p1", viewed("e1", 1)), ("p2", viewed("e2", 1))],
    )
    assert store.identifiers_of("p1") == [("customer_id", "c-p1"), ("email", "a@example.com")]
    assert store.erased_among(["p1", "p2"]) == set()
    store.erase(["p1", "stub-of-p1"], T)
    store.erase(["p1"], T)  # again: nothing more to do
    assert store.load(["p1", "p2"]).keys() == {"p2"}
    assert store.identifiers_of("p1") == [] and store.profile_id_for("email", "a@example.com") is None
    assert store.timeline("p1") == [] and len(store.timeline("p2")) == 1
    assert store.erased_among(["p1", "p2", "stub-of-p1"]) == {"p1", "stub-of-p1"}


def test_erase_keeps_the_suppression_list(engine: Engine) -> None:
    store = ProfileStore(engine)
    store.save([profile("p1")], [("email", "a@example.com", "p1")], "g", "i", {})
    store.erase(["p1"], T, [("email", "a@example.com"), ("customer_id", "c-p1"), ("email", "a@example.com")])
    store.erase(["p1"], T, [("email", "a@example.com")])  # again
    assert store.suppressed() == [("customer_id", "c-p1"), ("email", "a@example.com")]


def test_a_guarded_save_claims_the_offsets_it_read_from(engine: Engine) -> None:
    store = ProfileStore(engine)
    tp = ("t", 0)
    store.save([profile("p1", 1)], [], "g", "inc", {tp: 5}, expect=Expect({tp: None}, {"p1": None}))
    for stale in (None, 3):  # another instance committed up to 5 meanwhile
        with pytest.raises(Fenced) as fenced:
            store.save([profile("p1", 2)], [], "g", "inc", {tp: 9}, expect=Expect({tp: stale}, {"p1": 1}))
        assert fenced.value.partitions == [tp]
    assert store.load(["p1"])["p1"].version == 1 and store.offsets("g", "t", "inc") == {0: 5}  # nothing written
    store.save([profile("p1", 2)], [], "g", "inc", {tp: 9}, expect=Expect({tp: 5}, {"p1": 1}))
    assert store.offsets("g", "t", "inc") == {0: 9}
    # a new incarnation of the topic (the broker was reset): the stale row is no one's claim
    store.save([profile("p1", 3)], [], "g", "inc-2", {tp: 1}, expect=Expect({tp: None}, {"p1": 2}))
    assert store.offsets("g", "t", "inc-2") == {0: 1}


def test_a_guarded_save_refuses_profiles_changed_since_they_were_read(engine: Engine) -> None:
    store = ProfileStore(engine)
    store.save([profile("p1", 1), profile("p2", 1)], [], "g", "i", {})
    published: list[str] = []
    cases: list[tuple[Profile, int | None]] = [
        (profile("p1", 2), 7),  # read at another version
        (profile("p2", 2), None),  # thought new, but another instance made it
        (profile("p3", 2), 1),  # gone (erased) since it was read
    ]
    for changed, read_at in cases:
        with pytest.raises(StaleProfiles) as stale:
            store.save(
                [changed, profile("p9", 1)],
                [("email", "x@example.com", "p9")],
                "g",
                "i",
                {("t", 0): 4},
                expect=Expect({("t", 0): None}, {changed.profile_id: read_at, "p9": None}),
                before_write=lambda: published.append("sent"),
            )
        assert stale.value.profile_ids == [changed.profile_id]
    assert published == []  # nothing published for a state that was not saved
    assert store.load(["p1", "p2", "p3", "p9"]) == {"p1": profile("p1", 1), "p2": profile("p2", 1)}
    assert store.offsets("g", "t", "i") == {} and store.profile_id_for("email", "x@example.com") is None


def test_instances_writing_the_same_profile_lose_no_update(engine: Engine) -> None:
    """Two writers read-modify-write one profile at once (a merge writes a profile another instance
    owns); each refused save is folded again from the store, and every increment lands."""
    store = ProfileStore(engine)
    store.save([profile("shared", 0)], [], "g", "i", {})
    per_writer, errors = 40, []

    def writer() -> None:
        try:
            for _ in range(per_writer):
                while True:
                    current = store.load(["shared"])["shared"]
                    bumped = current.model_copy(update={"version": current.version + 1})
                    try:
                        store.save([bumped], [], "g", "i", {}, expect=Expect(versions={"shared": current.version}))
                        break
                    except StaleProfiles:
                        continue
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.load(["shared"])["shared"].version == 2 * per_writer


def test_folded_inputs_are_written_with_the_profiles_and_forgotten_once_trimmed(engine: Engine) -> None:
    store = ProfileStore(engine)
    store.save([profile("p-1")], [], "g", "run", {("crm.events.v1", 0): 3}, inputs=[5, 6, 9])
    store.save([profile("p-1", version=2)], [], "g", "run", {("crm.events.v1", 0): 4}, inputs=[9, 10])
    assert store.folded_among([4, 5, 9, 10, 11]) == {5, 9, 10}
    store.forget_folded_inputs(9)
    assert store.folded_among(range(1, 12)) == {10}


def test_report_deltas_add_up_in_the_save(engine: Engine) -> None:
    store = ProfileStore(engine)
    day = T.date()
    deltas = ReportDeltas(sales={(day, "channel", "web", "EUR"): (1, 100_000, 0)}, cohorts={"2026-01": (1, 0)})
    store.save([profile("p1")], [], "g", "inc", {("t", 0): 1}, reports=deltas)
    store.save([profile("p2")], [], "g", "inc", {("t", 0): 2}, reports=deltas)
    with store.engine.connect() as conn:
        assert conn.execute(select(report_sales.c.orders, report_sales.c.gross_units)).all() == [(2, 200_000)]
        assert conn.execute(select(report_cohorts.c.customers)).scalars().all() == [2]
