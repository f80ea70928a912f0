"""The JavaScript SDKs the client tests run, installed by npm at test time (never from a CDN).

Pinned versions install once into ``.cache/npm/<hash of the pins>`` (gitignored), so later sessions reuse
them. No npm, or no registry, fails the test that needs the packages with npm's own words: the tests
that prove real clients work must not silently turn into skips.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

PACKAGES = {
    "@segment/analytics-next": "1.84.3",
    "@rudderstack/analytics-js": "3.34.1",
    "@segment/analytics-node": "3.1.0",
    "@rudderstack/rudder-sdk-node": "3.0.13",
}
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "npm"
INSTALL_TIMEOUT_S = 600


def installed_packages() -> Path:
    """The node_modules folder holding PACKAGES, installing them first if this machine has not yet (one
    pytest worker at a time: the others wait for its install)."""
    pins = orjson.dumps(PACKAGES, option=orjson.OPT_SORT_KEYS)
    folder = CACHE / hashlib.sha256(pins).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install(folder)


def _install(folder: Path) -> Path:
    modules = folder / "node_modules"
    if (folder / ".installed").exists():
        return modules
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: the browser and Node SDK tests install the real SDKs with it (Node 20+)")
    (folder / "package.json").write_bytes(orjson.dumps({"private": True, "dependencies": PACKAGES}))
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    if result.returncode != 0:
        pytest.fail(f"npm install of {', '.join(PACKAGES)} failed (is the npm registry reachable?):\n{result.stderr}")
    (folder / ".installed").touch()
    return modules
