"""Typed configuration: a TOML file, overridden by BRIDGE_* environment variables.

Precedence, highest first: environment (``BRIDGE_DATABASE__URL``, with ``__``
between section and key), then the file given by ``--config`` or
``BRIDGE_CONFIG``, then the defaults below. Unknown keys are errors, in the
file and in every section. Loading validates; nothing connects until a command
starts.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    SettingsConfigDict,
)

from bridge.errors import ConfigError
from core import settings_file
from core.codec import Codec, build_codec
from core.limits import Limits
from core.topics import TopicTemplate

DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "db" / "migrations"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(Section):
    url: str = Field(
        "postgresql://bridge@127.0.0.1:15432/bridge",
        description="PostgreSQL URL, postgresql://user:password@host:port/dbname.",
    )
    read_url: str | None = Field(
        None,
        description="A streaming read replica of url for the API's history reads: used for a "
        "read when it has replayed all the primary had written when the read began (else url "
        "serves it). Writes always go to url.",
    )
    mode: Literal["auto", "timescaledb", "plain"] = Field(
        "auto",
        description="Schema mode for `bridge db migrate`: TimescaleDB when the extension is "
        "available (auto), or forced. Once migrated, the database keeps its mode.",
    )
    retention_days: int = Field(
        90,
        ge=8,
        le=36500,
        description="Raw telemetry older than this is dropped. At least 8 days, so that it "
        "stays beyond the 7-day window that the aggregates are refreshed over.",
    )
    partitions_ahead_days: int = Field(
        7, ge=1, le=366, description="Plain PostgreSQL: day partitions created ahead of today."
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="Timeout of one connection attempt.")
    write_route: Literal["unnest", "copy"] = Field(
        "unnest",
        description="How a batch's points go in: unnest, one INSERT ... FROM unnest(arrays) "
        "statement (one round trip); copy, a binary COPY into a staging table, then INSERT "
        "... FROM it. Both are idempotent (ON CONFLICT DO NOTHING); bench/README.md compares "
        "them.",
    )
    migrations_dir: Path = Field(
        DEFAULT_MIGRATIONS_DIR, description="Folder of the ordered SQL migrations."
    )
    pool_size: int = Field(
        4, ge=1, le=32, description="Connections per worker; each carries one batch at a time."
    )
    maintain_interval_s: float = Field(
        60.0, ge=0, description="How often a worker runs `db maintain` (0: never)."
    )

    @field_validator("url", "read_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("must start with postgresql:// (e.g. postgresql://user@host:5432/db)")
        if not parts.hostname:
            raise ValueError("has no host (e.g. postgresql://user@127.0.0.1:5432/db)")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {exc}") from None
        if port == 0:
            raise ValueError("has an invalid port: 0 (PostgreSQL listens on 5432 by default)")
        return value


class RedisSettings(Section):
    url: str = Field(
        "redis://127.0.0.1:16379/0", description="Redis URL for the recent-data cache."
    )
    enabled: bool = Field(True, description="Update the cache after each commit.")
    window_s: int = Field(900, ge=10, le=86_400, description="Recent window kept per metric.")
    prefix: str = Field("bridge:", description="Prefix of every key the bridge writes.")
    timeout_s: float = Field(2.0, gt=0, description="Timeout of one cache update.")
    max_pending_batches: int = Field(
        64, ge=1, description="Cache updates waiting beyond this are skipped (and counted)."
    )
    write_interval_ms: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Cache writes start at most this often; the batches committed meanwhile "
        "go out together, which costs Redis less per point under load (0: one write per "
        "batch, as soon as it is committed).",
    )


class TlsSettings(Section):
    ca_file: Path | None = Field(None, description="CA bundle that signed the broker certificate.")
    cert_file: Path | None = Field(None, description="Client certificate, for mutual TLS.")
    key_file: Path | None = Field(None, description="Client private key, for mutual TLS.")


class Route(Section):
    topic: str = Field(
        description="Topic template, e.g. telemetry/{site_id}/{device_id}; {device_id} is "
        "required, {site_id} and {metric} optional. Subscribed as $share/<group>/<filter>."
    )
    codec: str = Field(
        "seed_json",
        description="Payload codec: seed_json, flat_json, raw_value, mapping or line_protocol.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description='Options of the mapping codec, e.g. { preset = "tasmota" } (README, '
        '"Payloads as devices send them"), or of line_protocol, e.g. { device_tag = "host" }; '
        "the other codecs take none.",
    )

    def compile(self, limits: Limits) -> tuple[TopicTemplate, Codec]:
        """The route's matcher and decoder; ValueError naming the route when
        either is invalid. Settings call it to validate, the router to run."""
        try:
            codec = build_codec(self.codec, self.options, limits.max_id_len)
        except ValueError as exc:
            raise ValueError(f"route {self.topic!r}: {exc}") from None
        try:
            template = TopicTemplate(self.topic, limits.max_id_len, limits.max_metric_len)
        except ValueError as exc:
            raise ValueError(f"route {self.topic!r}: {exc}") from None
        return template, codec


def _default_client_id() -> str:
    return f"bridge-{socket.gethostname()}"[:40]


class BrokerLogin(Section):
    """Where a broker is and how to log in to it."""

    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(11883, ge=1, le=65535, description="Broker port.")
    username: str | None = Field(None, description="Broker user.")
    password: SecretStr | None = Field(None, description="Broker password.")
    tls: TlsSettings | None = Field(None, description="Connect with TLS when set.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive.")


class MqttSettings(BrokerLogin):
    client_id: str = Field(
        default_factory=_default_client_id,
        pattern=r"^[A-Za-z0-9_.-]{1,40}$",
        description="Stable id prefix; worker N connects as <client_id>-N and keeps its session "
        "across restarts under that id.",
    )
    group: str = Field(
        "bridge", pattern=r"^[A-Za-z0-9_-]+$", description="Shared-subscription group name."
    )
    session_expiry_s: int = Field(
        86_400, ge=0, description="How long the broker keeps a disconnected worker's session."
    )
    receive_maximum: int = Field(
        5000,
        ge=1,
        le=65_535,
        description="Unacked messages the broker may send us at once: the in-flight bound.",
    )
    reconnect_min_s: float = Field(0.2, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(15.0, gt=0, description="Longest reconnect delay.")
    max_packet_bytes: int = Field(
        4_194_304,
        ge=1024,
        le=268_435_455,
        description="Maximum Packet Size sent in CONNECT: the broker drops a bigger PUBLISH for "
        "us instead of sending it. Between limits.max_payload_bytes and this, a message is "
        "dead-lettered as payload_too_large.",
    )
    request_timeout_s: float = Field(
        10.0, gt=0, description="How long CONNACK, SUBACK or UNSUBACK may take."
    )
    export_sys: bool = Field(
        True,
        description="Worker 0 reads the broker's $SYS counters (queued messages and bytes, "
        "drops, clients) on a connection of its own and exports them as mosquitto_* gauges "
        "on its /metrics (its broker user must read $SYS/broker/#).",
    )
    routes: list[Route] = Field(
        default_factory=lambda: [
            Route(topic="telemetry/{site_id}/{device_id}", codec="seed_json"),
            Route(topic="telemetry/{device_id}", codec="seed_json"),
        ],
        min_length=1,
        description="Topic templates and the codec for each. With ingest_via = broker, the API "
        "publishes to the first seed_json route with {site_id} and {device_id} (readings with "
        "a site) or with {device_id} alone (readings without).",
    )


class BatchSettings(Section):
    max_points: int = Field(
        1000, ge=1, le=100_000, description="Close a batch at this many points."
    )
    max_queued: int = Field(
        8,
        ge=1,
        le=1000,
        description="Closed batches waiting for a writer; at this many the bridge stops reading "
        "the broker until one is taken (backpressure, never dropping).",
    )
    max_delay_ms: int = Field(
        200, ge=1, le=60_000, description="Close a batch this long after its first message."
    )


class ReceiptSettings(Section):
    """Commit receipts to edge agents (bridge/receipts.py)."""

    enabled: bool = Field(
        True,
        description="Publish, after each commit, a receipt of the edge agents' messages it "
        "holds on receipts/<gateway>, so that the agents delete their readings only then.",
    )
    interval_ms: int = Field(
        150, ge=10, le=10_000, description="Receipts are gathered and published this often."
    )
    max_pending: int = Field(
        1_000_000,
        ge=1000,
        description="Messages waiting for their receipt while the broker is unreachable; "
        "beyond this the oldest are given up (their agents publish them again).",
    )


class HttpSettings(Section):
    host: str = Field("127.0.0.1", description="Address of /healthz, /readyz and /metrics.")
    port: int = Field(
        9108, ge=0, le=65535, description="Port of worker 0; worker N listens on port + N (0: off)."
    )


class ApiSettings(Section):
    """The read API (`bridge api`)."""

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(9180, ge=1, le=65535, description="Port the API listens on.")
    online_after_s: float = Field(
        300.0,
        gt=0,
        description="A device whose last point is newer than this is online; else offline.",
    )
    page_size: int = Field(100, ge=1, le=10_000, description="Devices per page by default.")
    max_page_size: int = Field(1000, ge=1, le=10_000, description="Largest page a client may ask.")
    series_points: int = Field(
        2000,
        ge=100,
        le=100_000,
        description="Points per series a query aims to stay within; picks raw rows, 1m or 1h.",
    )
    max_range_days: int = Field(
        400, ge=1, le=3650, description="Longest time range one query may ask for."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed to call the API from a browser, e.g. ["https://grafana.example"].',
    )
    key_cache_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="How long a checked API key is trusted before it is looked up again "
        "(a revoked key stops working within this).",
    )
    ingest_timeout_s: float = Field(
        10.0, gt=0, le=300, description="How long a submit waits for its commit before 503."
    )
    db_pool_size: int = Field(8, ge=1, le=100, description="Database connections the API may open.")
    ingest_via: Literal["database", "broker"] = Field(
        "database",
        description="How a submit becomes durable before its answer: committed to the "
        "database by the API, or accepted by the broker at QoS 1 (PUBACK) and stored by the "
        "bridge; readings the broker does not accept are committed by the API.",
    )
    broker_timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="ingest_via = broker: how long a submit waits for the broker's PUBACK "
        "before committing its readings itself.",
    )
    broker: BrokerLogin | None = Field(
        None,
        description="ingest_via = broker: the API's broker account, allowed to publish "
        "telemetry (mosquitto/README.md).",
    )

    @model_validator(mode="after")
    def _broker_when_used(self) -> ApiSettings:
        if self.ingest_via == "broker" and self.broker is None:
            raise ValueError(
                "api.ingest_via = 'broker' needs [api.broker]: the host, port and account the "
                "API publishes with (BRIDGE_API__BROKER__USERNAME, ...)"
            )
        return self


class ShutdownSettings(Section):
    grace_s: float = Field(
        20.0, gt=0, description="On SIGTERM, time to flush and ack before exiting anyway."
    )


class SparkplugSettings(Section):
    """The bridge as a Sparkplug B host application (README, "Sparkplug B")."""

    enabled: bool = Field(
        False,
        description="Read spBv1.0/ topics: one worker at a time holds the Sparkplug role "
        "(a PostgreSQL advisory lock), the others stand by.",
    )
    identity: Literal["edge_node_device", "edge_node"] = Field(
        "edge_node_device",
        description="Device ids: edge_node_device stores a device as <edge_node>:<device>; "
        "edge_node stores it under its node, metrics named <device>.<metric>. The group is "
        "the site in both.",
    )
    reorder_timeout_s: float = Field(
        2.0,
        ge=0,
        description="After a seq gap, how long a missing message may still arrive "
        "before a rebirth is requested.",
    )
    rebirth_cooldown_s: float = Field(
        5.0, ge=0, description="At most one rebirth request per node in this time."
    )
    standby_poll_s: float = Field(
        1.0, gt=0, description="How often a standby worker tries to take the Sparkplug role."
    )
    primary_host_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Primary host mode, off when unset: the Sparkplug role's holder publishes "
        'spBv1.0/STATE/<id> {"online": true, "timestamp": T}, retained, QoS 1, with the will '
        '{"online": false, "timestamp": T}.',
    )


class AlarmSettings(Section):
    """Alarm rules evaluated on committed points (bridge/alarms)."""

    enabled: bool = Field(
        False,
        description="Workers send committed points of metrics that some rule selects to the "
        "alarm stream, for `bridge alarms run` to evaluate.",
    )
    stream: str = Field("alarms:points", description="Redis Stream key (after redis.prefix).")
    stream_max_len: int = Field(
        1_000_000,
        ge=1000,
        description="Entries (committed batches) the stream keeps for an evaluator that is "
        "down or behind; older ones are trimmed, and the evaluator says so when it finds a gap.",
    )
    max_pending_batches: int = Field(
        64, ge=1, description="Batches waiting for the stream beyond this are skipped (counted)."
    )
    rules_refresh_s: float = Field(
        2.0, gt=0, le=300, description="How often workers and the evaluator re-read the rules."
    )
    tick_s: float = Field(1.0, gt=0, le=60, description="How often no-data rules are judged.")
    reorder_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="The evaluator holds what it reads this long, then judges it in point-time "
        "order: workers commit one series' points in parallel, a few batches apart.",
    )
    flush_s: float = Field(
        0.2, ge=0, le=10, description="The evaluator commits its state at most this often."
    )
    max_series: int = Field(
        200_000, ge=1, description="Series (rule, device, metric) the evaluator tracks at most."
    )
    max_samples: int = Field(
        10_000, ge=10, description="Samples one series keeps for its rule's window at most."
    )
    topic_prefix: str = Field(
        "alerts", description="Transitions are published on <topic_prefix>/<site>/<device>."
    )
    client_id: str = Field("bridge-alarms", description="The evaluator's MQTT client id.")
    webhook_url: str | None = Field(
        None, description="POST each transition here as JSON (optional)."
    )
    webhook_timeout_s: float = Field(5.0, gt=0, le=60, description="One webhook attempt.")
    webhook_attempts: int = Field(
        5, ge=1, le=20, description="Attempts per transition, with doubling backoff from 0.5 s."
    )
    http_port: int = Field(
        9190, ge=0, le=65535, description="The evaluator's /healthz and /metrics (0: none)."
    )


class Settings(BaseSettings):
    """The whole configuration. Section names are the TOML tables."""

    model_config = SettingsConfigDict(
        env_prefix="BRIDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)  # type: ignore[arg-type]
    redis: RedisSettings = Field(default_factory=RedisSettings)  # type: ignore[arg-type]
    mqtt: MqttSettings = Field(default_factory=MqttSettings)  # type: ignore[arg-type]
    batch: BatchSettings = Field(default_factory=BatchSettings)  # type: ignore[arg-type]
    receipts: ReceiptSettings = Field(default_factory=ReceiptSettings)  # type: ignore[arg-type]
    limits: Limits = Field(default_factory=Limits)  # type: ignore[arg-type]
    http: HttpSettings = Field(default_factory=HttpSettings)  # type: ignore[arg-type]
    api: ApiSettings = Field(default_factory=ApiSettings)  # type: ignore[arg-type]
    shutdown: ShutdownSettings = Field(default_factory=ShutdownSettings)  # type: ignore[arg-type]
    sparkplug: SparkplugSettings = Field(default_factory=SparkplugSettings)  # type: ignore[arg-type]
    alarms: AlarmSettings = Field(default_factory=AlarmSettings)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.limits.max_age_days > self.database.retention_days:
            raise ValueError(
                "limits.max_age_days must not exceed database.retention_days: older points "
                "would be written only to be dropped"
            )
        if self.mqtt.reconnect_min_s > self.mqtt.reconnect_max_s:
            raise ValueError("mqtt.reconnect_min_s must not exceed mqtt.reconnect_max_s")
        if self.mqtt.max_packet_bytes <= self.limits.max_payload_bytes:
            raise ValueError(
                "mqtt.max_packet_bytes must exceed limits.max_payload_bytes (topic and header "
                "come on top), or no payload_too_large message could ever be dead-lettered"
            )
        for route in self.mqtt.routes:
            route.compile(self.limits)
        return self


def load_settings(path: Path | None = None) -> Settings:
    """Loads and validates the configuration; raises ConfigError saying what to fix.

    ``path`` defaults to $BRIDGE_CONFIG; with neither, defaults and environment only.
    """
    if path is None and os.environ.get("BRIDGE_CONFIG"):
        path = Path(os.environ["BRIDGE_CONFIG"])
    try:
        return settings_file.load(Settings, path, "BRIDGE_*")
    except settings_file.SettingsProblem as exc:
        raise ConfigError(str(exc)) from None


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, secrets masked, for --print-config."""
    data = settings.model_dump(mode="json")
    data["database"]["url"] = mask_url(settings.database.url)
    data["redis"]["url"] = mask_url(settings.redis.url)
    if settings.mqtt.password is not None:
        data["mqtt"]["password"] = "***"  # noqa: S105 - the mask, not a password
    broker = settings.api.broker
    if broker is not None and broker.password is not None:
        data["api"]["broker"]["password"] = "***"  # noqa: S105
    return data
