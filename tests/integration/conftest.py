"""One real embedded stack per test session: Tansu broker, Redis server, SQLite, all four services, API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from crmhub.core import kafka as kafka_io
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.hub import Hub, running_hub
from tests.integration.helpers import ABANDONMENT_DELAY_S, api_client
from tests.integration.npm import installed_packages


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("crmhub"),
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        abandonment_delay_s=ABANDONMENT_DELAY_S,
        write_keys="test-web-key:web,test-pos-key:pos",
        api_token="test-token",
        shared_ids="kiosk-shared-1",  # tests/integration/test_identity.py
        rfm_refresh_s=2.0,  # tests/integration/test_profile_api.py
    )
    with running_hub(settings) as running:
        yield running


@pytest.fixture(scope="session")
def api(hub: Hub) -> Iterator[httpx.Client]:
    with api_client(hub.settings) as client:
        yield client


@pytest.fixture(scope="session")
def producer(hub: Hub) -> Iterator[KafkaProducer]:
    prod = kafka_io.producer(hub.settings)
    yield prod
    prod.close()


@pytest.fixture(scope="session")
def node_modules() -> Path:
    return installed_packages()
