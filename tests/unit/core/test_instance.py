"""Instance names: how the hub names a scaled service's processes, and what a process calls itself."""

from __future__ import annotations

import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crmhub.core.instance import INSTANCE_ENV, instance_name, instance_names, service_of
from crmhub.core.metrics import restarts_exposition


def test_a_service_run_once_keeps_its_own_name_and_several_are_numbered() -> None:
    assert instance_names("profile", 1) == ["profile"]
    assert instance_names("profile", 3) == ["profile-1", "profile-2", "profile-3"]


def test_a_process_is_named_by_the_hub_or_else_by_its_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INSTANCE_ENV, "segmenter-2")
    assert instance_name("segmenter") == "segmenter-2"
    monkeypatch.delenv(INSTANCE_ENV)
    assert instance_name("segmenter") == f"segmenter@{socket.gethostname()}"  # a container: its id


@pytest.mark.parametrize(
    ("instance", "service"),
    [("profile", "profile"), ("profile-12", "profile"), ("notifier@3f2a9c1b", "notifier"), ("broker", "broker")],
)
def test_the_service_of_an_instance(instance: str, service: str) -> None:
    assert service_of(instance) == service


def test_restarts_are_served_per_instance_with_their_service() -> None:
    text = restarts_exposition({"profile-1": 2, "profile-2": 1, "redis": 1}).decode()
    (family,) = text_string_to_metric_families(text)
    got = {(s.labels["service"], s.labels["instance"]): s.value for s in family.samples if s.name.endswith("_total")}
    assert got == {("profile", "profile-1"): 2, ("profile", "profile-2"): 1, ("redis", "redis"): 1}
