"""Shop pages with the real browser SDKs, in Chromium, fill profiles: Segment's analytics.js
(``@segment/analytics-next``) and RudderStack's JavaScript SDK v3, installed by npm, loaded by a page of
another origin (a shop server on another port) with the README's snippet, and nothing fetched from
outside 127.0.0.1 (every such request is refused and reported)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmhub.core.net import free_port
from crmhub.hub import Hub
from tests.integration.helpers import profile_by, uid, wait_for

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
WRITE_KEY = "test-web-key"
README = Path(__file__).resolve().parents[2] / "README.md"
README_HUB = "http://127.0.0.1:8000"
BUNDLES = {  # where the shop serves each SDK's bundle from: the folder of its npm package
    "js/analytics-next": "@segment/analytics-next/dist/umd",
    "js/rudderstack": "@rudderstack/analytics-js/dist/npm/modern/bundled/umd",
}
CAMPAIGN = "utm_source=newsletter&utm_medium=email&utm_campaign=spring-sale"

# What the shop's own script does after the README's snippet: the SDK-neutral e-commerce journey.
JOURNEY = """
<script>
  const sdk = window.analytics || window.rudder;
  window.journey = async (user) => {
    sdk.identify(user, {email: user + "@example.com", name: "Ada", plan: "gold", favourite_store: "Leeds",
                        vip: true, visits: 7});
    sdk.group("acme-" + user, {name: "Acme Ltd", industry: "retail", employees: 120});
    sdk.track("Product Viewed", {product_id: "sku-1", name: "Boots", price: 80, currency: "GBP"});
    sdk.track("Product Added", {product_id: "sku-1", name: "Boots", price: 80, quantity: 1, currency: "GBP"});
    sdk.track("Order Completed", {order_id: "o-" + user, total: 80, currency: "GBP",
                                  products: [{product_id: "sku-1", price: 80, quantity: 1}]});
    return "sent";
  };
</script>
"""


def shop_page(sdk: str, hub_url: str) -> str:
    """The README's snippet for ``sdk`` as a shop copies it, pointed at this test's hub and key."""
    match = re.search(
        rf"<!-- shop-snippet:{sdk} -->\n```html\n(.*?)```\n<!-- /shop-snippet:{sdk} -->", README.read_text(), re.S
    )
    assert match, f"README.md has no shop-snippet:{sdk} block"
    snippet = match.group(1).replace(README_HUB, hub_url).replace("demo-web-key", WRITE_KEY)
    return f"<!doctype html><html><head><title>Shop</title>\n{snippet}{JOURNEY}</head><body>Shop</body></html>"


@pytest.fixture(scope="module")
def shop(node_modules: Path, hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A static shop on another origin than the hub: its pages and the SDK bundles npm installed."""
    root = tmp_path_factory.mktemp("shop")
    for served, package in BUNDLES.items():
        (root / served).parent.mkdir(parents=True, exist_ok=True)
        (root / served).symlink_to(node_modules / package, target_is_directory=True)
    hub_url = f"http://127.0.0.1:{hub.settings.api_port}"
    for sdk in ("segment", "rudderstack"):
        (root / f"{sdk}.html").write_text(shop_page(sdk, hub_url))
    handler = partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser
        browser.close()


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_a_shop_page_with_the_real_browser_sdk_fills_a_profile(
    sdk: str, shop: str, chromium: Any, api: httpx.Client
) -> None:
    outside: list[str] = []
    errors: list[str] = []
    page = chromium.new_page()
    page.route(
        re.compile(r"^(?!http://127\.0\.0\.1[:/]).*"), lambda route: (outside.append(route.request.url), route.abort())
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda request: errors.append(f"{request.url}: {request.failure}"))
    page.on("response", lambda response: response.status >= 400 and errors.append(f"{response.url}: {response.status}"))
    try:
        page.goto(f"{shop}/{sdk}.html?{CAMPAIGN}", referer="https://search.example/?q=boots")
        user = uid(f"{sdk}-user-")
        assert page.evaluate("user => window.journey(user)", user) == "sent"
        profile = wait_for(
            lambda: (p := profile_by(api, user_id=user)) and p["order_count"] == 1 and p["groups"] and p,
            timeout_s=45,
            what=f"{sdk}'s events folded into a profile",
        )
    finally:
        page.close()
    assert outside == [] and errors == []
    assert (
        profile["traits"] | {"plan": "gold", "favourite_store": "Leeds", "vip": True, "visits": 7} == profile["traits"]
    )
    assert profile["identifiers"]["email"] == [f"{user}@example.com"]
    assert profile["groups"][f"acme-{user}"]["traits"] == {"name": "Acme Ltd", "industry": "retail", "employees": 120}
    assert profile["recent_views"][0]["product_id"] == "sku-1"
    context = profile["context"]
    assert (context["first_touch"]["source"], context["first_touch"]["campaign"]) == ("newsletter", "spring-sale")
    assert context["device_type"] == "desktop" and context["locale"]
    assert context["referrer"].startswith("https://search.example/")
