"""``crmhub up --scale``: every service at two instances on one supervised hub, one consumer group each.

The chaos test's mixed stream (orders with re-sends, identity merges, carts abandoned or bought, complaints
answered or not, payment failures; :mod:`tests.integration.test_chaos`) goes through it. The two instances
of a service share its partitions (each one's own metric files show it consumed), the results are as
exact as with one (orders and money per profile, one alert per cause, segment membership equal to a fresh
evaluation), nothing restarted, and memory is reported per instance.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from crmhub.core.instance import instance_names
from crmhub.core.metrics import process_samples
from crmhub.core.setting_values import SCALABLE
from crmhub.hub import Hub, running_hub
from tests.integration.helpers import api_client, uid, wait_for
from tests.integration.test_chaos import Expected, Stream, chaos_settings, check_everything, customer_steps, interleave

pytestmark = pytest.mark.integration

CUSTOMERS = 120  # about 1,200 steps
RATE = 200  # steps a second: the stream lasts about 6 s
CART_DELAY_S = 15.0  # nothing is killed here: the pipeline's lag stays far below it


def consumed(hub: Hub, pid: int) -> float:
    """What one instance's process consumed, from its own metric files."""
    return sum(value for _, value in process_samples(hub.metrics_dir, pid, "crmhub_events_consumed_total"))


def test_every_service_at_two_instances_shares_the_work_with_exact_results(tmp_path: Path) -> None:
    run, rng, want = uid("scale"), random.Random(20), Expected()
    with running_hub(
        chaos_settings(
            tmp_path / "data",
            abandonment_delay_s=CART_DELAY_S,
            scale=",".join(f"{service}=2" for service in SCALABLE),
        ),
        supervise=True,
    ) as hub:
        instances = [name for service in SCALABLE for name in instance_names(service, 2)]
        assert sorted(c.name for c in hub.children) == sorted([*instances, "api"])
        stream = Stream(hub, interleave([customer_steps(run, i, rng, want) for i in range(CUSTOMERS)], rng), RATE)
        stream.start()
        check_everything(hub, stream, want, {}, cart_delay_s=CART_DELAY_S)  # {}: no instance restarted
        idle = {c.name for c in hub.children if c.name != "api" and not consumed(hub, c.proc.pid)}
        assert not idle, "every instance took a share of its service's partitions"
        with api_client(hub.settings) as api:
            wait_for(lambda: set(instances) <= set(api.get("/v1/ops").json()["memory"]), 10, "memory per instance")
