"""HTTP sinks against httpx's MockTransport: signed requests, statuses that are retried or not, Slack."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from crmhub.core.routing import SlackSink, WebhookSink
from services.notifier.retry import PermanentError, RetryableError
from services.notifier.signature import verify_signature
from services.notifier.webhook import SlackHttpSink, WebhookHttpSink, check_response, slack_payload
from tests.unit.notifier.fixtures import cart, complaint

NOW = 1_741_953_600.0
CONFIG = WebhookSink(type="webhook", url="https://hooks.example.com/crm", secret="whsec", headers={"X-Team": "care"})


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(status: int) -> None:
    check_response(status)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_busy_or_broken_receivers_are_retried(status: int) -> None:
    with pytest.raises(RetryableError, match=f"^HTTP {status}"):
        check_response(status, "try later")


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 410, 422])
def test_other_statuses_are_permanent(status: int) -> None:
    with pytest.raises(PermanentError, match=f"^HTTP {status}"):
        check_response(status)


def deliver(handler: httpx.MockTransport, attempt: int = 1) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(transport=handler) as client:
            await WebhookHttpSink("hook", CONFIG, client, lambda: NOW).send(complaint(), attempt)

    asyncio.run(go())


def test_a_webhook_posts_the_alert_signed_with_its_id_as_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    deliver(httpx.MockTransport(handler), attempt=2)
    (request,) = seen
    assert request.method == "POST" and str(request.url) == CONFIG.url
    assert orjson.loads(request.content) == orjson.loads(complaint().model_dump_json())
    assert request.headers["Idempotency-Key"] == complaint().alert_id
    assert request.headers["Crmhub-Alert-Kind"] == "complaint"
    assert request.headers["Crmhub-Delivery-Attempt"] == "2"
    assert request.headers["X-Team"] == "care" and request.headers["Content-Type"] == "application/json"
    assert request.headers["Crmhub-Signature"].startswith(f"t={int(NOW)},v1=")
    assert verify_signature("whsec", request.headers["Crmhub-Signature"], request.content, now=NOW)


def test_a_connection_failure_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RetryableError, match="ConnectError: connection refused"):
        deliver(httpx.MockTransport(handler))


def test_a_rejection_is_permanent() -> None:
    with pytest.raises(PermanentError, match="HTTP 401: bad signature"):
        deliver(httpx.MockTransport(lambda request: httpx.Response(401, text="bad signature")))


def test_the_slack_payload_has_a_fallback_text_and_blocks() -> None:
    payload = slack_payload(complaint())
    assert payload["text"].startswith(":rotating_light: Complaint: complaint on twitter by @angry")
    header, section, context = payload["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert section["text"]["text"] == "complaint on twitter by @angry: My order &lt;never&gt; arrived &amp; I'm cross"
    assert {"type": "mrkdwn", "text": "*Spent*\n120.00"} in section["fields"]
    assert complaint().alert_id in context["elements"][0]["text"]
    cart_fields = slack_payload(cart())["blocks"][1]["fields"]
    assert {"type": "mrkdwn", "text": "*Cart*\n2 item(s), 30.00 EUR"} in cart_fields


def test_slack_gets_the_payload_as_json() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(200, text="ok")

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await SlackHttpSink("slack", SlackSink(type="slack", url="https://hooks.slack.test/x"), client).send(
                cart(), 1
            )

    asyncio.run(go())
    assert [orjson.loads(b) for b in bodies] == [slack_payload(cart())]
