"""A shop's server sends with the real Node SDKs (``@segment/analytics-node``, RudderStack's
``@rudderstack/rudder-sdk-node``), installed by npm: a small script run by node, and the profile read."""

from __future__ import annotations

import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from crmhub.hub import Hub
from tests.integration.helpers import profile_by, uid, wait_for

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).with_name("node") / "send.js"
WRITE_KEY = "test-web-key"


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_the_real_node_sdk_fills_a_profile(sdk: str, hub: Hub, api: httpx.Client, node_modules: Path) -> None:
    node = shutil.which("node")
    assert node, "node is missing: the Node SDK tests run a script with it (Node 20+)"
    user = uid(f"node-{sdk}-")
    hub_url = f"http://127.0.0.1:{hub.settings.api_port}"
    result = subprocess.run(
        [node, str(SCRIPT), sdk, hub_url, WRITE_KEY, user],
        env={**os.environ, "NODE_PATH": str(node_modules)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    profile = wait_for(
        lambda: (p := profile_by(api, user_id=user)) and p["order_count"] == 1 and p["groups"] and p,
        what=f"the {sdk} Node SDK's events folded into a profile",
    )
    assert (profile["traits"]["plan"], profile["traits"]["seats"]) == ("gold", 3)
    assert Decimal(profile["total_spent"]) == Decimal(30)
    assert profile["groups"][f"org-{user}"]["traits"] == {"name": "Leeds Runners", "plan": "club"}
