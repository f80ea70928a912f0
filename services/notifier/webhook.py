"""HTTP sinks: signed JSON webhooks and Slack incoming webhooks, over one shared ``httpx.AsyncClient``.

A webhook request is ``POST <url>`` with the alert document (as on ``crm.alerts.v1``) as its body and
``Crmhub-Signature`` (see :mod:`~services.notifier.signature`), ``Idempotency-Key`` (the alert id: the
same on every retry), ``Crmhub-Alert-Kind`` and ``Crmhub-Delivery-Attempt`` headers. Any 2xx is success;
408, 429 and 5xx are retried; any other status is permanent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from crmhub.core.routing import SlackSink, WebhookSink
from schemas.outputs import Alert
from services.notifier.retry import PermanentError, RetryableError
from services.notifier.signature import HEADER, signature_header

USER_AGENT = "crmhub-notifier/1"
RETRYABLE_STATUS = frozenset({408, 425, 429})


def check_response(status: int, body: str = "") -> None:
    """Raise the error a response status means (nothing for a 2xx)."""
    if 200 <= status < 300:
        return
    reason = f"HTTP {status}" + (f": {body[:200]}" if body else "")
    if status >= 500 or status in RETRYABLE_STATUS:
        raise RetryableError(reason)
    raise PermanentError(reason)


async def post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> None:
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:  # connect, read or write error, timeout
        raise RetryableError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
    check_response(response.status_code, response.text)


class WebhookHttpSink:
    def __init__(self, name: str, config: WebhookSink, client: httpx.AsyncClient, clock: Callable[[], float]) -> None:
        self.name = name
        self.config = config
        self.client = client
        self.clock = clock

    def request(self, alert: Alert, attempt: int) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt (signed at the time of the attempt)."""
        body = alert.model_dump_json().encode()
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            HEADER: signature_header(self.config.signing_secret, body, int(self.clock())),
            "Idempotency-Key": alert.alert_id,
            "Crmhub-Alert-Kind": alert.kind,
            "Crmhub-Delivery-Attempt": str(attempt),
        }
        return body, headers

    async def send(self, alert: Alert, attempt: int) -> None:
        await post(self.client, self.config.url, *self.request(alert, attempt))


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notifications, clients without blocks) and blocks."""
    title = {"complaint": ":rotating_light: Complaint", "cart_abandoned": ":shopping_trolley: Cart abandoned"}.get(
        alert.kind, alert.kind
    )
    fields = [
        {"type": "mrkdwn", "text": f"*Kind*\n{alert.kind}"},
        {"type": "mrkdwn", "text": f"*Profile*\n`{alert.profile_id}`"},
    ]
    customer = alert.details.get("customer")
    if isinstance(customer, dict):
        fields.append({"type": "mrkdwn", "text": f"*Spent*\n{customer.get('total_spent', '0')}"})
        fields.append({"type": "mrkdwn", "text": f"*Orders*\n{customer.get('order_count', 0)}"})
    if alert.kind == "cart_abandoned":
        value = " ".join(str(v) for v in (alert.details.get("value"), alert.details.get("currency")) if v)
        fields.append({"type": "mrkdwn", "text": f"*Cart*\n{alert.details.get('items', '?')} item(s), {value}"})
    return {
        "text": f"{title}: {alert.summary}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _escape(alert.summary)}, "fields": fields},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"alert `{alert.alert_id}` · raised {alert.raised_at.isoformat()}"}
                ],
            },
        ],
    }


def _escape(text: str) -> str:
    """Slack's three control characters in mrkdwn text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackHttpSink:
    def __init__(self, name: str, config: SlackSink, client: httpx.AsyncClient) -> None:
        self.name = name
        self.config = config
        self.client = client

    async def send(self, alert: Alert, attempt: int) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        await post(self.client, self.config.url, orjson.dumps(slack_payload(alert)), headers)
