"""Where alerts go: the sinks of a routes file, which alert kinds go to which sinks, and rate limits.

Pure: parsing and validation only (no sockets, no clock). A routes file looks like::

    sinks:
      support-hook: {type: webhook, url: "https://support.example.com/hooks/crmhub", secret_env: HOOK_SECRET}
      support-slack: {type: slack, url: "https://hooks.slack.com/services/T0/B0/XYZ"}
      marketing-mail: {type: email, host: smtp.example.com, port: 587, starttls: true,
                       sender: crmhub@example.com, to: [marketing@example.com]}
      team-slack: {type: slack, url: "https://hooks.slack.com/services/T0/B1/XYZ", internal: true}
    routes:
      complaint: [support-hook, support-slack, console]
      cart_abandoned: [marketing-mail, team-slack]   # internal ones (no consent): team-slack only
      "*": [console]            # every kind without a route of its own
                                # (detractor and bad_review: complaint's, if it has one)

Every alert also goes to ``crm.alerts.v1`` (the sink ``topic``, implicit); ``console`` is built in.
See docs/alerts.md.

It lives in core rather than in the notifier because the settings validate the routes file and the rate
limits when they load (a bad file stops ``crmhub up`` at once, not the notifier later), and core never
imports a service.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from crmhub.core.errors import ConfigError
from schemas.outputs import AlertKind

TOPIC = "topic"  # the implicit sink: crm.alerts.v1, the recent-alerts list and the counters
CONSOLE = "console"  # the built-in sink: one log line per alert
ANY_KIND = "*"
KINDS: tuple[str, ...] = get_args(AlertKind)
ROUTED_LIKE: Mapping[str, str] = {"detractor": "complaint", "bad_review": "complaint"}  # unhappy customers: support's
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Sink(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    internal: bool = Field(False, description="Reached by internal alerts too (the team's own channels).")


def _secret(literal: SecretStr | None, env: str | None, what: str) -> SecretStr | None:
    if literal is not None and env is not None:
        raise ValueError(f"give either {what} or {what}_env, not both")
    if env is None:
        return literal
    value = os.environ.get(env)
    if not value:
        raise ValueError(f"{what}_env names the environment variable {env}, which is not set")
    return SecretStr(value)


class WebhookSink(_Sink):
    """POST the alert as JSON, signed with HMAC-SHA256 (``Crmhub-Signature``, like Stripe's)."""

    type: Literal["webhook"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    secret: SecretStr | None = None
    secret_env: str | None = None
    headers: dict[str, str] = {}

    @model_validator(mode="after")
    def _resolve_secret(self) -> WebhookSink:
        secret = _secret(self.secret, self.secret_env, "secret")
        if secret is None or not secret.get_secret_value():
            raise ValueError("a webhook needs a signing secret: secret or secret_env")
        object.__setattr__(self, "secret", secret)
        return self

    @property
    def signing_secret(self) -> str:
        assert self.secret is not None  # see _resolve_secret
        return self.secret.get_secret_value()


class SlackSink(_Sink):
    """POST a Slack incoming-webhook message (``text`` plus Block Kit ``blocks``)."""

    type: Literal["slack"]
    url: Annotated[str, Field(pattern=r"^https?://")]


class EmailSink(_Sink):
    """One e-mail per alert over SMTP (plain, STARTTLS or SMTPS), to fixed recipients."""

    type: Literal["email"]
    host: str
    port: int = Field(25, ge=1, le=65535)
    sender: str
    to: Annotated[list[str], Field(min_length=1)]
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    subject_prefix: str = "[crmhub]"

    @model_validator(mode="after")
    def _resolve_password(self) -> EmailSink:
        object.__setattr__(self, "password", _secret(self.password, self.password_env, "password"))
        if self.starttls and self.ssl:
            raise ValueError("give either starttls (port 587) or ssl (port 465), not both")
        return self


class ConsoleSink(_Sink):
    type: Literal["console"]
    internal: bool = True


SinkConfig = Annotated[WebhookSink | SlackSink | EmailSink | ConsoleSink, Field(discriminator="type")]


class RoutesFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sinks: dict[str, SinkConfig] = {}
    routes: dict[str, list[str]] = {}


@dataclass(frozen=True)
class Routes:
    """The sinks by name and, per alert kind, the names of the sinks its alerts go to (besides the topic)."""

    sinks: Mapping[str, WebhookSink | SlackSink | EmailSink | ConsoleSink]
    by_kind: Mapping[str, tuple[str, ...]]

    def sinks_for(self, kind: str, internal: bool = False, channel: str | None = None) -> tuple[str, ...]:
        """The sinks an alert of ``kind`` goes to: ``topic`` first, then the kind's route (or the route of
        the kind it is routed like, or ``*``'s); of an internal alert, only the routed sinks marked
        ``internal`` (the console is); for a ``channel`` (a journey's message), only the routed sinks of
        that type, and the console."""
        found = (self.by_kind[k] for k in (kind, ROUTED_LIKE.get(kind, kind), ANY_KIND) if k in self.by_kind)
        routed = next(found, ())
        chosen = (name for name in routed if not internal or self.sinks[name].internal)
        if channel is not None:
            chosen = (name for name in chosen if self.sinks[name].type in (channel, CONSOLE))
        return (TOPIC, *chosen)


DEFAULT_ROUTES = Routes(sinks={CONSOLE: ConsoleSink(type="console")}, by_kind={ANY_KIND: (CONSOLE,)})


def _where(loc: Sequence[int | str]) -> str:
    return ".".join(str(p) for p in loc if p not in ("webhook", "slack", "email", "console")) or "top level"


def parse_routes(doc: Any, origin: str = "routes") -> Routes:
    """A routes document (parsed YAML) -> :class:`Routes`; ConfigError naming the place of the first problem."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{origin}: expected a mapping with 'sinks' and 'routes'")
    try:
        parsed = RoutesFile.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise ConfigError(f"{origin}: {_where(err['loc'])}: {err['msg']}") from exc
    _check_sink_names(parsed.sinks, origin)
    sinks = {**parsed.sinks, CONSOLE: ConsoleSink(type="console")}
    by_kind = {kind: _checked_route(kind, names, sinks, origin) for kind, names in parsed.routes.items()}
    return Routes(sinks=sinks, by_kind=by_kind)


def _check_sink_names(names: Iterable[str], origin: str) -> None:
    reserved = {TOPIC, CONSOLE} & set(names)
    if reserved:
        raise ConfigError(f"{origin}: sink name {sorted(reserved)[0]!r} is reserved (built in)")
    for name in names:
        if not _NAME.match(name):
            raise ConfigError(f"{origin}: sink name {name!r} must be letters, digits, '_', '-' or '.'")


def _checked_route(kind: str, names: Sequence[str], sinks: Mapping[str, Any], origin: str) -> tuple[str, ...]:
    if kind not in (*KINDS, ANY_KIND):
        raise ConfigError(f"{origin}: route {kind!r}: alert kind must be one of {', '.join(KINDS)} or '*'")
    for name in names:
        if name == TOPIC:
            raise ConfigError(f"{origin}: route {kind!r}: every alert goes to the topic anyway; leave it out")
        if name not in sinks:
            raise ConfigError(f"{origin}: route {kind!r}: no sink named {name!r} (sinks: {', '.join(sinks)})")
    if len(set(names)) != len(names):
        raise ConfigError(f"{origin}: route {kind!r} names a sink twice")
    return tuple(names)


def load_routes(path: Path | None) -> Routes:
    """The routes of a YAML file; unset: every alert to the topic and the console."""
    if path is None:
        return DEFAULT_ROUTES
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"routes file {path}: {exc}") from exc
    return parse_routes(doc, f"routes file {path}")


# --- rate limits ------------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LIMIT = re.compile(r"^(?P<most>\d+)\s*/\s*(?P<n>\d+(?:\.\d+)?)?\s*(?P<unit>[smhd])?$")


@dataclass(frozen=True)
class RateLimit:
    """At most ``most`` alerts of one kind per customer within any ``window_s`` seconds."""

    most: int
    window_s: float


def parse_rate_limits(value: str) -> dict[str, RateLimit]:
    """``"cart_abandoned:1/1d,*:20/1h"`` -> the limit per alert kind (``*``: kinds not listed); raises
    ValueError naming the bad pair."""
    limits: dict[str, RateLimit] = {}
    for pair in (p.strip() for p in value.split(",")):
        if not pair:
            continue
        kind, _, rule = pair.partition(":")
        kind = kind.strip()
        m = _LIMIT.match(rule.strip())
        window = float(m["n"] or 1) * _UNITS[m["unit"] or "s"] if m else 0.0
        if kind not in (*KINDS, ANY_KIND) or kind in limits or not m or (m["n"] is None and m["unit"] is None):
            raise ValueError(
                f"alert rate limit {pair!r} must look like KIND:N/WINDOW (e.g. complaint:5/1h; window in s, m, h "
                f"or d) with KIND one of {', '.join(KINDS)} or '*', each once"
            )
        if int(m["most"]) < 1 or window <= 0:
            raise ValueError(f"alert rate limit {pair!r} needs at least 1 alert per window and a window above 0")
        limits[kind] = RateLimit(int(m["most"]), window)
    return limits


def limit_for(limits: Mapping[str, RateLimit], kind: str) -> RateLimit | None:
    return limits.get(kind, limits.get(ANY_KIND))


def window_allows(recent: Sequence[float], now: float, limit: RateLimit) -> bool:
    """Whether one more alert fits: fewer than ``limit.most`` of the ``recent`` alert times (seconds) lie in
    the sliding window ``(now - window_s, now]``."""
    return sum(1 for t in recent if now - limit.window_s < t <= now) < limit.most
