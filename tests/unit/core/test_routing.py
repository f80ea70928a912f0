"""Routes files, rate limits: parsing, validation with errors that name the place, the sliding window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from crmhub.core.errors import ConfigError
from crmhub.core.routing import (
    DEFAULT_ROUTES,
    EmailSink,
    RateLimit,
    WebhookSink,
    limit_for,
    load_routes,
    parse_rate_limits,
    parse_routes,
    window_allows,
)
from crmhub.core.settings import Settings

HOOK = {"type": "webhook", "url": "https://hooks.example.com/crm", "secret": "s3cret"}


def doc(**extra: Any) -> dict[str, Any]:
    return {
        "sinks": {
            "hook": HOOK,
            "slack": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"},
            "mail": {"type": "email", "host": "127.0.0.1", "port": 2525, "sender": "crm@x.com", "to": ["a@x.com"]},
        },
        "routes": {"complaint": ["hook", "slack", "console"], "*": ["mail"]},
        **extra,
    }


def test_routes_name_the_sinks_of_each_kind_after_the_topic() -> None:
    routes = parse_routes(doc())
    assert routes.sinks_for("complaint") == ("topic", "hook", "slack", "console")
    assert routes.sinks_for("cart_abandoned") == ("topic", "mail")  # no route of its own: '*'
    assert isinstance(routes.sinks["hook"], WebhookSink) and routes.sinks["hook"].signing_secret == "s3cret"
    assert isinstance(routes.sinks["mail"], EmailSink) and routes.sinks["mail"].port == 2525


def test_unhappy_feedback_goes_where_complaints_go_unless_routed_itself() -> None:
    routes = parse_routes(doc())
    assert routes.sinks_for("detractor") == routes.sinks_for("bad_review") == ("topic", "hook", "slack", "console")
    own = parse_routes(doc(routes={"complaint": ["hook"], "bad_review": ["slack"], "*": ["mail"]}))
    assert (own.sinks_for("bad_review"), own.sinks_for("detractor")) == (("topic", "slack"), ("topic", "hook"))
    assert parse_routes(doc(routes={"*": ["mail"]})).sinks_for("detractor") == ("topic", "mail")


def test_internal_alerts_reach_only_the_sinks_marked_internal_and_the_console() -> None:
    team = {"type": "slack", "url": "https://hooks.slack.com/services/T/B/TEAM", "internal": True}
    routes = parse_routes(
        doc(
            routes={"cart_abandoned": ["mail", "team", "console"]}, sinks={"team": team, "mail": doc()["sinks"]["mail"]}
        )
    )
    assert routes.sinks_for("cart_abandoned") == ("topic", "mail", "team", "console")
    assert routes.sinks_for("cart_abandoned", internal=True) == ("topic", "team", "console")
    assert DEFAULT_ROUTES.sinks_for("cart_abandoned", internal=True) == ("topic", "console")


def test_without_a_file_every_alert_goes_to_the_topic_and_the_console() -> None:
    assert load_routes(None) is DEFAULT_ROUTES
    assert DEFAULT_ROUTES.sinks_for("complaint") == ("topic", "console")


def test_a_kind_with_an_empty_route_goes_to_the_topic_only() -> None:
    assert parse_routes(doc(routes={"complaint": [], "*": ["console"]})).sinks_for("complaint") == ("topic",)


def test_the_secret_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    hook = {"type": "webhook", "url": "http://127.0.0.1:9/h", "secret_env": "HOOK_SECRET"}
    routes = parse_routes({"sinks": {"hook": hook}, "routes": {"*": ["hook"]}})
    sink = routes.sinks["hook"]
    assert isinstance(sink, WebhookSink) and sink.signing_secret == "from-env"
    assert "from-env" not in repr(sink)  # secrets stay masked


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"routes": {"complaint": ["nowhere"]}}, "route 'complaint': no sink named 'nowhere'"),
        (
            {"routes": {"refund": ["hook"]}},
            "route 'refund': alert kind must be one of cart_abandoned, browse_abandoned, complaint",
        ),
        ({"routes": {"complaint": ["topic"]}}, "every alert goes to the topic anyway"),
        ({"routes": {"complaint": ["hook", "hook"]}}, "route 'complaint' names a sink twice"),
        ({"sinks": {"console": {"type": "console"}}}, "sink name 'console' is reserved"),
        ({"sinks": {"hook": {**HOOK, "secret": None}}}, "sinks.hook: Value error, a webhook needs a signing secret"),
        ({"sinks": {"hook": {**HOOK, "secret_env": "CRMHUB_TEST_UNSET"}}}, "either secret or secret_env"),
        ({"sinks": {"hook": {**HOOK, "url": "ftp://x"}}}, "sinks.hook.url: String should match pattern"),
        ({"sinks": {"hook": {**HOOK, "retries": 3}}}, "sinks.hook.retries: Extra inputs are not permitted"),
        ({"sinks": {"x": {"type": "pager"}}}, "sinks.x: Input tag 'pager' found using 'type' does not match"),
        ({"sinks": {"m": {"type": "email", "host": "h", "sender": "s", "to": []}}}, "sinks.m.to: List should have"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_routes_document_is_one_clear_error(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^routes: ") as err:
        parse_routes({**doc(), **bad})
    assert message in str(err.value)


def test_a_secret_env_that_is_not_set_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRMHUB_TEST_UNSET", raising=False)
    hook = {"type": "webhook", "url": "http://h/", "secret_env": "CRMHUB_TEST_UNSET"}
    with pytest.raises(ConfigError, match="environment variable CRMHUB_TEST_UNSET, which is not set"):
        parse_routes({"sinks": {"hook": hook}})


def test_a_routes_file_that_is_not_yaml_or_missing_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "routes.yaml"
    bad.write_text("sinks: [unclosed")
    with pytest.raises(ConfigError, match=f"^routes file {bad}: "):
        load_routes(bad)
    with pytest.raises(ConfigError, match="No such file"):
        load_routes(tmp_path / "missing.yaml")
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_routes(bad)


def test_rate_limits_per_kind_with_a_default() -> None:
    limits = parse_rate_limits(" cart_abandoned:1/1d , *:20/1h,complaint:5/90s")
    assert limits == {
        "cart_abandoned": RateLimit(1, 86400),
        "*": RateLimit(20, 3600),
        "complaint": RateLimit(5, 90),
    }
    assert limit_for(parse_rate_limits("complaint:3/m"), "complaint") == RateLimit(3, 60)
    assert limit_for(parse_rate_limits("complaint:3/m"), "cart_abandoned") is None
    assert parse_rate_limits("") == {}


@pytest.mark.parametrize("bad", ["complaint", "complaint:5", "refund:1/1h", "complaint:x/1h", "complaint:0/1h",
                                 "complaint:1/0s", "complaint:1/1w", "complaint:1/1h,complaint:2/1h"])  # fmt: skip
def test_a_bad_rate_limit_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="alert rate limit '"):
        parse_rate_limits(bad)


def test_the_window_slides() -> None:
    two_per_hour = RateLimit(2, 3600)
    assert window_allows([], 10_000, two_per_hour)
    assert window_allows([9_000], 10_000, two_per_hour)
    assert not window_allows([9_000, 9_500], 10_000, two_per_hour)
    assert window_allows([6_400, 9_500], 10_000, two_per_hour)  # 6 400 = now - window: just out


def test_settings_check_the_routes_file_and_the_rate_limits(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes: {complaint: [nowhere]}")
    with pytest.raises(ValidationError, match="route 'complaint': no sink named 'nowhere'"):
        Settings(routes_file=routes)
    with pytest.raises(ValidationError, match="alert rate limit 'complaint:5'"):
        Settings(alert_rate_limits="complaint:5")
    routes.write_text("routes: {complaint: [console]}")
    assert Settings(routes_file=routes, alert_rate_limits="complaint:5/1h").routes_file == routes
