"""E-mail sink: one message per alert over SMTP, sent with the standard library's ``smtplib`` in a worker
thread (``asyncio.to_thread``), so the notifier's event loop never waits on a mail server.

The ``Message-ID`` is derived from the alert id, so a mail system that sees a message twice (a retry after
a lost reply) can tell.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

import orjson

from crmhub.core.routing import EmailSink
from schemas.outputs import Alert
from services.notifier.retry import PermanentError, RetryableError


def message_id(alert: Alert) -> str:
    return f"<{re.sub(r'[^A-Za-z0-9.-]', '.', alert.alert_id)}@crmhub>"


# no folding below RFC 5322's hard line limit: the stdlib folds some long subjects right after "Subject:"
POLICY = policy.SMTP.clone(max_line_length=998)


def build_message(alert: Alert, config: EmailSink) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    msg["From"] = config.sender
    msg["To"] = ", ".join(config.to)
    msg["Subject"] = f"{config.subject_prefix} {alert.kind}: {alert.summary[:100]}".strip()
    msg["Date"] = format_datetime(alert.raised_at)
    msg["Message-ID"] = message_id(alert)
    msg["X-Crmhub-Alert-Id"] = alert.alert_id
    details = orjson.dumps(alert.details, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    msg.set_content(
        f"{alert.summary}\n\nkind: {alert.kind}\nprofile: {alert.profile_id}\nalert: {alert.alert_id}\n"
        f"raised: {alert.raised_at.isoformat()}\n\ndetails:\n{details}\n"
    )
    return msg


class SmtpSink:
    def __init__(self, name: str, config: EmailSink, timeout_s: float) -> None:
        self.name = name
        self.config = config
        self.timeout_s = timeout_s

    async def send(self, alert: Alert, attempt: int) -> None:
        await asyncio.to_thread(self._send, build_message(alert, self.config))

    def _send(self, msg: EmailMessage) -> None:
        c = self.config
        try:
            smtp: smtplib.SMTP = (
                smtplib.SMTP_SSL(c.host, c.port, timeout=self.timeout_s, context=ssl.create_default_context())
                if c.ssl
                else smtplib.SMTP(c.host, c.port, timeout=self.timeout_s)
            )
            with smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.username and c.password is not None:
                    smtp.login(c.username, c.password.get_secret_value())
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"SMTP recipients refused: {', '.join(exc.recipients)}") from exc
        except smtplib.SMTPResponseException as exc:
            error = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            reason = f"SMTP {exc.smtp_code}: {error[:200]}"
            if exc.smtp_code >= 500:  # 5xx: refused for good (a bad sender, credentials, a policy)
                raise PermanentError(reason) from exc
            raise RetryableError(reason) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise RetryableError(f"SMTP {type(exc).__name__}: {exc}") from exc
