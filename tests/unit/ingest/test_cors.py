"""CollectorCORS: the allowed origins get CORS answers on the collector's paths only."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmhub.core.setting_values import parse_cors_origins
from services.ingest.collector import is_collector_path
from services.ingest.cors import CollectorCORS

SHOP = "https://shop.example"
PREFLIGHT = {"Origin": SHOP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}


def client(origins: str) -> TestClient:
    app = FastAPI()
    app.add_middleware(CollectorCORS, origins=parse_cors_origins(origins), is_collector_path=is_collector_path)
    app.add_api_route("/v1/t", lambda: {"success": True}, methods=["POST"])
    app.add_api_route("/v1/profiles", lambda: {}, methods=["GET"])
    return TestClient(app)


def test_a_listed_origin_is_allowed_and_echoed() -> None:
    web = client(f"{SHOP}, https://www.shop.example/")
    preflight = web.options("/v1/t", headers=PREFLIGHT)
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == SHOP
    simple = web.post("/v1/t", headers={"Origin": SHOP, "Content-Type": "text/plain"}, content=b"{}")
    assert simple.headers["access-control-allow-origin"] == SHOP


def test_an_unlisted_origin_gets_no_cors_answer() -> None:
    web = client(SHOP)
    assert web.options("/v1/t", headers={**PREFLIGHT, "Origin": "https://evil.example"}).status_code == 400
    simple = web.post("/v1/t", headers={"Origin": "https://evil.example"}, content=b"{}")
    assert "access-control-allow-origin" not in simple.headers


def test_the_read_api_never_answers_another_origin() -> None:
    web = client("*")
    assert "access-control-allow-origin" not in web.get("/v1/profiles", headers={"Origin": SHOP}).headers
    assert web.options("/v1/profiles", headers=PREFLIGHT).status_code == 405


@pytest.mark.parametrize(
    "path", ["/v1/t", "/v1/b", "/beacon/v1/batch", "/v1/group", "/sourceConfig/", "/v1/projects/k/settings"]
)
def test_collector_paths(path: str) -> None:
    assert is_collector_path(path)


@pytest.mark.parametrize("bad", ["shop.example", "ftp://shop.example", "https://shop.example/path", "https://"])
def test_a_cors_origin_must_be_a_scheme_and_host(bad: str) -> None:
    with pytest.raises(ValueError, match="CORS origin"):
        parse_cors_origins(f"{SHOP},{bad}")
