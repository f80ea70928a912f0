"""Settings: write-key and identity parsing, CRMHUB_* environment variables, derived server addresses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from crmhub.core.setting_values import (
    parse_complaint_sla,
    parse_identity_limits,
    parse_identity_priority,
    parse_shared_ids,
    parse_write_keys,
)
from crmhub.core.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CRMHUB_"):
            monkeypatch.delenv(name)


def test_parse_write_keys() -> None:
    assert parse_write_keys(" k1:web , k2:pos,,k3:support ") == {"k1": "web", "k2": "pos", "k3": "support"}
    assert parse_write_keys("") == {}


@pytest.mark.parametrize("bad", ["nokey", ":web", "k2:crm", "k2:web:extra"])
def test_a_bad_write_key_pair_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match=f"^write key '{bad}' must look like KEY:SOURCE"):
        parse_write_keys(f"good:web,{bad}")


def test_defaults() -> None:
    s = Settings()
    assert (s.api_port, s.partitions, s.abandonment_delay_s, s.broker_flavour) == (8000, 4, 3600.0, "kafka")
    assert s.write_key_sources == {"demo-web-key": "web"}
    assert (s.embedded_kafka, s.embedded_redis) == (True, True)
    assert s.bootstrap_servers == "127.0.0.1:19092"
    assert s.redis_dsn == "redis://127.0.0.1:16379/0"
    assert s.sql_url == f"sqlite:///{Path('.crmhub') / 'crmhub.sqlite3'}"


def test_environment_variables_are_picked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMHUB_API_PORT", "9001")
    monkeypatch.setenv("CRMHUB_KAFKA_URL", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("CRMHUB_REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("CRMHUB_DATA_DIR", "/var/lib/crmhub")
    monkeypatch.setenv("CRMHUB_WRITE_KEYS", "shop:web,till:pos")
    monkeypatch.setenv("CRMHUB_API_TOKEN", "s3cret")
    s = Settings()
    assert s.api_port == 9001
    assert (s.embedded_kafka, s.bootstrap_servers) == (False, "broker-1:9092,broker-2:9092")
    assert (s.embedded_redis, s.redis_dsn) == (False, "redis://cache:6379/2")
    assert s.sql_url == "sqlite:////var/lib/crmhub/crmhub.sqlite3"
    assert s.write_key_sources == {"shop": "web", "till": "pos"}
    assert s.api_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_a_bad_write_key_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMHUB_WRITE_KEYS", "shop:web,till:pso")
    with pytest.raises(ValidationError, match="write key 'till:pso' must look like KEY:SOURCE"):
        Settings()


@pytest.mark.parametrize(("name", "value"), [("CRMHUB_PARTITIONS", "0"), ("CRMHUB_ABANDONMENT_DELAY_S", "0")])
def test_out_of_range_numbers_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert info.value.errors()[0]["loc"] == (name.removeprefix("CRMHUB_").lower(),)


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.api_port = 1  # type: ignore[misc]
    assert s.api_port == 8000


def test_identity_defaults() -> None:
    s = Settings()
    assert s.identity_kinds == ("customer_id", "email", "phone", "loyalty_id", "anonymous_id")
    assert s.identity_kind_limits == {"customer_id": 1, "email": 5, "phone": 5, "loyalty_id": 5, "anonymous_id": 1000}
    assert s.shared_identifiers == frozenset()


def test_identity_environment_variables_are_picked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMHUB_IDENTITY_PRIORITY", "email, customer_id,phone,loyalty_id,anonymous_id")
    monkeypatch.setenv("CRMHUB_IDENTITY_LIMITS", "customer_id:2")
    monkeypatch.setenv("CRMHUB_SHARED_IDS", "kiosk-1,loyalty_id:STORE-CARD")
    s = Settings()
    assert s.identity_kinds[:2] == ("email", "customer_id")
    assert s.identity_kind_limits == {"customer_id": 2}
    assert s.shared_identifiers == {("anonymous_id", "kiosk-1"), ("loyalty_id", "STORE-CARD")}


@pytest.mark.parametrize(
    "bad",
    [
        "customer_id,email,phone,loyalty_id",  # one missing
        "customer_id,email,phone,loyalty_id,anonymous_id,email",  # one twice
        "customer_id,email,phone,loyalty_id,device_id",  # an unknown kind
    ],
)
def test_a_priority_must_name_every_kind_once(bad: str) -> None:
    with pytest.raises(ValueError, match="must name each of customer_id, email, phone, loyalty_id, anonymous_id"):
        parse_identity_priority(bad)


def test_parse_identity_limits() -> None:
    assert parse_identity_limits(" email:3 ,, anonymous_id:1000") == {"email": 3, "anonymous_id": 1000}
    assert parse_identity_limits("") == {}


@pytest.mark.parametrize("bad", ["email", "email:0", "email:-1", "email:many", "device_id:3", "email:2,email:3"])
def test_a_bad_limit_is_named(bad: str) -> None:
    pair = bad.split(",")[-1]
    with pytest.raises(ValueError, match=f"^identity limit '{pair}' must look like KIND:MAX"):
        parse_identity_limits(bad)


def test_parse_shared_ids() -> None:
    assert parse_shared_ids(" kiosk-1, email:till@shop.com ,weird:value") == {
        ("anonymous_id", "kiosk-1"),
        ("email", "till@shop.com"),
        ("anonymous_id", "weird:value"),  # not a kind: the whole of it is a device id
    }


def test_a_shared_id_needs_a_value() -> None:
    with pytest.raises(ValueError, match="shared id 'email:' has no value"):
        parse_shared_ids("kiosk-1,email:")


@pytest.mark.parametrize(
    ("name", "value"),
    [("CRMHUB_IDENTITY_PRIORITY", "email"), ("CRMHUB_IDENTITY_LIMITS", "email:0"), ("CRMHUB_SHARED_IDS", "phone: ")],
)
def test_bad_identity_settings_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert info.value.errors()[0]["loc"] == (name.removeprefix("CRMHUB_").lower(),)


def test_parse_complaint_sla() -> None:
    assert parse_complaint_sla(" high:60 , normal:600,low:3600.5") == {"high": 60.0, "normal": 600.0, "low": 3600.5}
    assert parse_complaint_sla(Settings().complaint_sla) == {"high": 900.0, "normal": 3600.0, "low": 14400.0}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("high:60,normal:600", "must give seconds for each of high, normal, low"),
        ("high:60,normal:600,low:0", "'low:0' must look like PRIORITY:SECONDS"),
        ("high:60,normal:x,low:1", "'normal:x' must look like"),
        ("high:60,high:6,normal:600,low:1", "'high:6' must look like"),
        ("urgent:1,high:60,normal:600,low:1", "'urgent:1' must look like"),
    ],
)
def test_a_bad_complaint_sla_is_named(monkeypatch: pytest.MonkeyPatch, bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_complaint_sla(bad)
    monkeypatch.setenv("CRMHUB_COMPLAINT_SLA", bad)
    with pytest.raises(ValidationError, match="complaint_sla"):
        Settings()


def test_scale_lists_every_service_one_instance_unless_given() -> None:
    assert Settings().instances == {"ingest": 1, "profile": 1, "segmenter": 1, "notifier": 1}
    scaled = Settings(scale=" ingest=2, profile=4 ,notifier=1")
    assert scaled.instances == {"ingest": 2, "profile": 4, "segmenter": 1, "notifier": 1}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("profile=x", "scale 'profile=x': the number of profile instances must be a whole number from 1 to 32"),
        ("segmenter=0", "scale 'segmenter=0': the number of segmenter instances must be a whole number"),
        ("ingest=-1", "scale 'ingest=-1': the number of ingest instances"),
        ("profile", "scale 'profile' must look like SERVICE=N with SERVICE one of ingest, profile, segmenter"),
        ("worker=2", "scale 'worker=2' must look like SERVICE=N"),
        ("profile=2,profile=3", r"scale 'profile=3' must look like SERVICE=N .*\(each once\)"),
        ("api=2", "scale: the API runs as one instance"),
        ("notifier=5", r"scale notifier=5: more instances than the 4 partitions of each topic \(--partitions\)"),
    ],
)
def test_a_bad_scale_names_the_service_and_number(monkeypatch: pytest.MonkeyPatch, bad: str, message: str) -> None:
    monkeypatch.setenv("CRMHUB_SCALE", bad)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_more_partitions_allow_more_instances() -> None:
    assert Settings(partitions=8, scale="profile=8").instances["profile"] == 8
