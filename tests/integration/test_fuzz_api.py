"""Every endpoint of a running API fuzzed from its OpenAPI schema (Schemathesis generates the requests,
Hypothesis drives them): as an admin (the bootstrap token; a write key on the collector) and with no
credentials. No answer may be a 5xx, none may hang (each call has a 10 s timeout), every 4xx is a JSON
error. The API runs on a hub of its own (broker, Redis, SQLite, the API only): fuzzed admin calls create
segments, tokens and erasures that must not reach the session hub's tests.

``GET /v1/stream`` (the dashboard's server-sent events, an endless answer) is left out; its own test
reads it (test_dashboard)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import given
from requests.auth import _basic_auth_str

from crmhub.api import create_app
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.hub import running_hub
from services.ingest.collector import is_collector_path
from tests.fuzzing import cases

pytestmark = pytest.mark.integration

ADMIN, WRITE_KEY = "fuzz-admin-token", "fuzz-web-key"
EXAMPLES = 20  # at most, per operation and credential (`make fuzz` explores further)
LEFT_OUT = {"GET /v1/stream"}


def operations() -> list[Any]:
    """The API's operations, from the schema the running API serves (the same app code)."""
    spec = create_app(Settings(data_dir=Path("/nonexistent"), api_token=ADMIN)).openapi()
    ops = [r.ok() for r in schemathesis.openapi.from_dict(spec).get_all_operations()]  # type: ignore[union-attr]
    return [op for op in ops if op.label not in LEFT_OUT]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("crmhub-fuzz")
    config = Settings(
        data_dir=data,
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        api_token=ADMIN,
        write_keys=f"{WRITE_KEY}:web",
    )
    with running_hub(config, services=("api",)):
        yield f"http://127.0.0.1:{config.api_port}"


def credentials(who: str, path: str) -> dict[str, str]:
    if who == "anonymous":
        return {}
    if is_collector_path(path):
        return {"Authorization": _basic_auth_str(WRITE_KEY, "")}
    return {"Authorization": f"Bearer {ADMIN}"}


def problem(response: Any) -> str | None:
    """What is wrong with an answer, if anything."""
    if response.status_code >= 500:
        return f"HTTP {response.status_code}"
    if 400 <= response.status_code < 500:
        kind = (response.headers.get("content-type") or [""])[0]
        if not kind.startswith("application/json"):
            return f"HTTP {response.status_code} as {kind or 'no content type'}"
        try:
            orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return f"HTTP {response.status_code}: not JSON"
    return None


def fuzz(op: Any, base: str, who: str, statuses: Counter[int], problems: list[str]) -> None:
    headers = credentials(who, op.path)

    @cases(EXAMPLES)
    @given(case=op.as_strategy())
    def call(case: Any) -> None:
        response = case.call(base_url=base, headers=headers, timeout=10)  # a hang fails the test
        statuses[response.status_code] += 1
        found = problem(response)
        if found:
            problems.append(f"{op.label} {who}: {found}: {response.content[:160]!r}")

    call()


@pytest.mark.parametrize("who", ["admin", "anonymous"])
def test_no_endpoint_answers_a_fuzzed_request_with_a_5xx_a_hang_or_a_non_json_error(base_url: str, who: str) -> None:
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    ops = operations()
    for op in ops:
        fuzz(op, base_url, who, statuses, problems)
    total = sum(statuses.values())
    print(f"\nfuzzed {len(ops)} operations as {who}: {total} requests, {dict(sorted(statuses.items()))}")
    assert len(ops) >= 45 and total >= 10 * len(ops)
    assert not problems, "\n".join(sorted(set(problems))[:40])
