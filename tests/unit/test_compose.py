"""docker-compose.yml's structure: every scalable service can run as several containers
(``docker compose up --scale profile=2``). No docker engine runs here, so the file is checked as data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from crmhub.core.instance import INSTANCE_ENV
from crmhub.core.setting_values import SCALABLE

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])  # safe_load resolves the `<<:` merges


@pytest.mark.parametrize("name", SCALABLE)
def test_a_scalable_service_has_nothing_two_containers_could_not_share(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["command"] == ["python", "-m", f"services.{name}"]
    # a fixed container name or host port would make `--scale` fail on the second container
    assert not {"container_name", "hostname", "ports"} & service.keys()
    env = service["environment"]
    assert INSTANCE_ENV not in env, "each container names itself by its host name (its container id)"
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
    # the metrics directory is shared (files per host name and pid), the data directory (faust's files) is not
    assert mounts.get(env["PROMETHEUS_MULTIPROC_DIR"]) == "metrics"
    assert env["CRMHUB_DATA_DIR"] not in mounts
    assert services["topics"]["environment"]["CRMHUB_PARTITIONS"] == env["CRMHUB_PARTITIONS"]
    assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"
