"""One frozen settings object for every crmhub process.

Each field is read from the environment as ``CRMHUB_<NAME>`` and can be given as the command-line flag
``--<name>`` (see :mod:`crmhub.cli`). ``None`` for a server URL means "start the embedded server".
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crmhub.core.errors import ConfigError
from crmhub.core.routing import load_routes, parse_rate_limits
from crmhub.core.setting_values import (
    PARSERS,
    parse_cors_origins,
    parse_identity_limits,
    parse_identity_priority,
    parse_scale,
    parse_shared_ids,
    parse_write_keys,
)
from schemas.events import IDENTIFIER_KINDS

MAX_OVER_S = 5.0  # the longest `GET /v1/ops` (and `crmhub status`) waits between its two samples

# settings given as text, checked by their parser (crmhub.core.setting_values.PARSERS) at startup
PARSED_FIELDS = (
    "write_keys",
    "cors_origins",
    "identity_priority",
    "identity_limits",
    "shared_ids",
    "loyalty_rates",
    "loyalty_tiers",
    "trait_survivorship",
    "complaint_sla",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRMHUB_", frozen=True, extra="ignore")

    data_dir: Path = Field(Path(".crmhub"), description="Where the SQLite store, Redis data and logs live.")
    kafka_url: str | None = Field(
        None, description="Kafka bootstrap servers (host:port[,host:port]); unset = start the embedded broker."
    )
    redis_url: str | None = Field(None, description="redis:// URL; unset = start the embedded Redis server.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL (postgresql+psycopg://…); unset = SQLite in the data directory."
    )
    broker_flavour: Literal["kafka", "tansu"] = Field(
        "kafka", description="What the Kafka URL points at; 'tansu' turns on the embedded broker's workarounds."
    )
    kafka_port: int = Field(19092, description="Port of the embedded Kafka-protocol broker (Tansu).")
    redis_port: int = Field(16379, description="Port of the embedded Redis server.")
    api_host: str = Field("127.0.0.1", description="Address the HTTP API binds to.")
    api_port: int = Field(8000, description="Port of the HTTP API (collector, profiles, segments, alerts).")
    api_token: SecretStr = Field(
        SecretStr("crmhub-dev-token"),
        description="The bootstrap admin token of the API (scoped tokens: crmhub tokens, docs/security.md).",
    )
    retention_days: int = Field(
        0,
        ge=0,
        description="Days after which the profiles' timelines (their stored events) and the dead letters' "
        "original inputs are deleted; 0 = keep them.",
    )
    identity_key: SecretStr | None = Field(
        None,
        description="Secret of the keyed hashes (HMAC) that stand for identifiers in Redis; unset = generated "
        "once into <data dir>/identity.key. Set the same value on every machine sharing one Redis.",
    )
    write_keys: str = Field(
        "demo-web-key:web",
        description="Collector write keys as key:source pairs, comma separated (HTTP Basic user name).",
    )
    write_key_rate: int = Field(
        1000,
        ge=0,
        description="Most collector requests per second one write key may send; more get 429 with Retry-After "
        "(the SDKs retry). 0 = no limit.",
    )
    body_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a collector request's body may take to arrive; a slower client gets 408."
    )
    cors_origins: str = Field(
        "*",
        description="Web origins whose pages may send to the collector (browser SDKs), comma separated, e.g. "
        "https://shop.example,https://www.shop.example; '*' (the default) lets any page send, as Segment's "
        "own API does: the write key, public in every page, says which source the events are. Only the "
        "collector answers cross-origin requests; the read API never does.",
    )
    partitions: int = Field(4, ge=1, description="Partitions of each topic crmhub creates.")
    abandonment_delay_s: float = Field(
        3600.0, gt=0, description="Seconds a cart may sit with items and no order before an alert."
    )
    browse_abandonment_delay_s: float = Field(
        7200.0,
        ge=0,
        description="Seconds after the last product view, with no cart and no order, before a browse "
        "abandonment alert; 0 = no browse abandonment alerts.",
    )
    complaint_sentiment: float = Field(
        -0.5,
        ge=-1,
        le=1,
        description="A social message with a sentiment at or below this (-1 angry … 1 delighted) is "
        "a complaint even when its source did not flag it as one.",
    )
    complaint_sla: str = Field(
        "high:900,normal:3600,low:14400",
        description="Seconds support has to answer a complaint, per priority (high, normal, low), as PRIORITY:SECONDS "
        "pairs: past it the complaint escalates to level 2, one more SLA later to level 3. See docs/alerts.md.",
    )
    complaint_vip_spend: Decimal = Field(
        Decimal(1000),
        ge=0,
        description="Total spent (profile currency) from which a complainer is a high-value customer.",
    )
    payment_failure_window_s: float = Field(
        3600.0, gt=0, description="Failed payments of one order within this many seconds of the first make one alert."
    )
    publish_profiles: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Publish every changed profile whole on crm.profiles.v1 (compacted, for outside readers); "
        "'auto': not on the embedded broker, which applies no compaction or retention (the segmenter and "
        "notifier read crm.profile-changes.v1 either way).",
    )
    rebuild_window_s: float = Field(
        86400.0,
        gt=0,
        description="After a broker loss, profiles changed within this many seconds are handed again to the "
        "segmenter and notifier (their pending timers and unread changes): longer than any alert delay.",
    )
    broker_memory_mb: int = Field(
        1024,
        ge=0,
        description="The embedded broker keeps every record in memory: when its resident memory passes this "
        "many MB, the hub drains the services and starts a new, empty broker, keeping the faust tables "
        "(docs/broker-memory.md); 0: no budget. External Kafka: not used.",
    )
    intake_journal: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Journal the collector's inputs (fsync'd) before answering 2xx; 'auto': with the embedded "
        "broker, which keeps records in memory only (with external Kafka the broker is the durable step).",
    )
    intake_max_ahead: int = Field(
        50_000,
        gt=0,
        description="Journaled inputs the forwarder puts in the broker ahead of what the profile store is known "
        "to have folded; the rest waits in the journal (a burst never fills the embedded broker's memory).",
    )
    intake_max_unforwarded: int = Field(
        200_000, gt=0, description="Journaled inputs waiting for the broker above which the collector answers 503."
    )
    dedup_window_s: int = Field(86400, gt=0, description="How long an event id is remembered for dedup.")
    segments_file: Path | None = Field(None, description="YAML file of segment definitions; unset = shipped.")
    journeys_file: Path | None = Field(
        None, description="YAML file of journeys (docs/journeys.md); unset = the shipped ones."
    )
    segment_tick_s: float = Field(
        1.0,
        gt=0,
        description="Seconds between the segmenter's checks for due clock flips and definition changes (and the "
        "notifier's for journeys made or changed through the API).",
    )
    segment_history_s: float = Field(60.0, gt=0, description="Seconds between two samples of the segment sizes.")
    # alert delivery (services/notifier/delivery.py, docs/alerts.md)
    routes_file: Path | None = Field(
        None,
        description="YAML file of alert sinks (webhook, slack, email) and which alert kinds go to which; "
        "unset = every alert to crm.alerts.v1 and the console. See docs/alerts.md.",
    )
    alert_rate_limits: str = Field(
        "",
        description="Most alerts of a kind per customer in a sliding window, as KIND:N/WINDOW pairs, comma "
        "separated (window like 30s, 15m, 1h, 1d; kind * = kinds not listed), e.g. cart_abandoned:1/1d. An alert "
        "over its limit still goes to crm.alerts.v1 and is counted, but reaches no other sink.",
    )
    delivery_attempts: int = Field(5, ge=1, description="Tries of an alert delivery to a sink before its dead letter.")
    delivery_backoff_s: float = Field(
        2.0, gt=0, description="Seconds before the first retry of a delivery; doubled each retry, with jitter."
    )
    delivery_backoff_max_s: float = Field(60.0, gt=0, description="Longest wait between two delivery tries.")
    delivery_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook request or SMTP session.")

    @field_validator("routes_file")
    @classmethod
    def _check_routes_file(cls, value: Path | None) -> Path | None:
        try:
            load_routes(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("alert_rate_limits")
    @classmethod
    def _check_alert_rate_limits(cls, value: str) -> str:
        parse_rate_limits(value)
        return value

    scale: str = Field(
        "",
        description="Instances of each service the hub runs, as SERVICE=N pairs, comma separated (e.g. "
        "ingest=2,profile=2,segmenter=2,notifier=2; services not listed: 1). The instances of a service are one "
        "consumer group and share its partitions, so more than CRMHUB_PARTITIONS sit idle. The API runs once. "
        "See docs/operations.md#scaling-out.",
    )

    @field_validator("scale")
    @classmethod
    def _check_scale(cls, value: str, info: ValidationInfo) -> str:
        partitions = info.data.get("partitions")  # absent when it was invalid itself
        for service, count in parse_scale(value).items():
            if partitions is not None and count > partitions:
                raise ValueError(
                    f"scale {service}={count}: more instances than the {partitions} partitions of each topic "
                    "(--partitions); the extra ones would sit idle"
                )
        return value

    batch_size: int = Field(2000, ge=1, description="Most records a service handles in one batch.")
    consumer_linger_ms: int = Field(
        100,
        ge=0,
        le=5000,
        description="How long ingest and profile gather records for a batch while they come steadily (not "
        "when a few trickle in, nor when behind): fewer, larger batches cost less CPU per event, for up to "
        "this much latency per stage. 0: a batch of whatever came.",
    )
    log_level: str = Field("INFO", description="Log level of the services.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Service log lines as text or as JSON objects (one a line, with event ids, never PII)."
    )
    identity_priority: str = Field(
        ",".join(IDENTIFIER_KINDS),
        description="Identifier kinds, strongest first, comma separated: every one of "
        f"{', '.join(IDENTIFIER_KINDS)} once. The strongest known identifier of an event names its profile.",
    )
    identity_limits: str = Field(
        "customer_id:1,email:5,phone:5,loyalty_id:5,anonymous_id:1000",
        description="Most identifiers of one kind a profile may hold, as kind:max pairs, comma separated "
        "(kinds not listed: no limit). An event that would exceed one links its weakest identifiers to nobody.",
    )
    shared_ids: str = Field(
        "",
        description="Identifiers shared by many customers (in-store devices, cards), comma separated, as "
        "kind:value, or a plain value for an anonymous_id. They never link anything.",
    )

    loyalty_points_per_unit: Decimal = Field(
        Decimal(1), ge=0, description="Loyalty points earned per currency unit spent (whole points, rounded down)."
    )
    loyalty_rates: str = Field(
        "",
        description="Points per unit for particular currencies, as CUR:points pairs, comma separated "
        "(e.g. JPY:0.01); other currencies earn loyalty_points_per_unit.",
    )
    loyalty_point_value: Decimal = Field(
        Decimal("0.01"), gt=0, description="What one point pays at the till, in currency units (redemptions)."
    )
    loyalty_tiers: str = Field(
        "member:0,silver:500,gold:2000,platinum:5000",
        description="Loyalty tiers as name:points pairs, comma separated: a profile is in the highest tier "
        "its earned points reach (none below the lowest threshold).",
    )
    rfm_refresh_s: float = Field(
        3600.0, gt=0, description="Seconds between refreshes of the RFM scores against the whole customer base."
    )
    trait_survivorship: str = Field(
        "",
        description="Which value of a trait survives, as trait:rule pairs, comma separated; rule 'latest' "
        "(the default: latest by event time), 'first' (earliest by event time) or sources best first "
        "joined by '>' (e.g. name:crm>pos>web; a tie of rank: latest). Trait '*' sets the default.",
    )

    @field_validator(*PARSED_FIELDS)
    @classmethod
    def _check_parsed(cls, value: str, info: ValidationInfo) -> str:
        PARSERS[info.field_name or ""](value)  # raises ValueError naming the bad part
        return value

    @property
    def write_key_sources(self) -> dict[str, str]:
        return parse_write_keys(self.write_keys)

    @property
    def cors_origin_list(self) -> list[str]:
        return parse_cors_origins(self.cors_origins)

    @property
    def identity_kinds(self) -> tuple[str, ...]:
        return parse_identity_priority(self.identity_priority)

    @property
    def identity_kind_limits(self) -> dict[str, int]:
        return parse_identity_limits(self.identity_limits)

    @property
    def shared_identifiers(self) -> frozenset[tuple[str, str]]:
        return parse_shared_ids(self.shared_ids)

    @property
    def instances(self) -> dict[str, int]:
        """Instances per scalable service (``scale``), every one of them listed."""
        return parse_scale(self.scale)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "crmhub.sqlite3"

    @property
    def sql_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def embedded_kafka(self) -> bool:
        return self.kafka_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def publishes_profiles(self) -> bool:
        return self.publish_profiles == "on" or (self.publish_profiles == "auto" and self.broker_flavour == "kafka")

    @property
    def journals_intake(self) -> bool:
        return self.intake_journal == "on" or (self.intake_journal == "auto" and self.broker_flavour == "tansu")

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_url or f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"
