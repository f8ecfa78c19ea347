"""The ingest path's sections: where points are stored (database, redis),
where they come from (mqtt: the broker login, TLS and the routes, each a topic
template and its codec) and how they are batched (batch).

Each section validates its own keys; rules that tie two sections together
(e.g. mqtt.max_packet_bytes against limits.max_payload_bytes) are checked by
Settings (bridge.config.settings). ``Route.compile`` is the one place a route
becomes a matcher and a codec: the settings call it to validate, the router to
run.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from bridge.config.section import Section
from core.codec import Codec, build_codec
from core.limits import Limits
from core.topics import TopicTemplate

DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "db" / "migrations"


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
        description="While data waits for the worker (batches for the database, more than "
        "half of receive_maximum messages unacked, or more than 64 KiB unread in the "
        "socket: a backlog draining, or a worker that does not keep up), cache writes "
        "start at most this often and the batches committed meanwhile go out together, "
        "which costs Redis less per point (0: always one write per batch, at once).",
    )
    window_in_backlog: bool = Field(
        False,
        description="Also write the recent window while data waits for the worker. Off: "
        "only latest values and devices are written then, which leaves the cores to the "
        "database; the API reads those times from the database instead.",
    )
    backlog_share: float = Field(
        0.15,
        gt=0,
        le=1,
        description="While data waits for the worker steadily (a drain, a saturated machine), "
        "the largest share of the time cache writes may take: after a write of 40 ms the next "
        "starts 40 / share ms later at the earliest, and what comes meanwhile goes out with it "
        "(or is skipped beyond max_pending_batches; the API reads those times from the "
        "database). A write costs Redis per distinct series, so a large fleet needs this to "
        "leave the cores to the database (1: no limit).",
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
    max_merged_points: int = Field(
        4000,
        ge=0,
        le=100_000,
        description="A writer that finds more closed batches waiting commits them together, "
        "up to this many points in one statement (a backlog: fewer, larger commits cost the "
        "database less per point); each batch's messages are acked after that commit. "
        "0: one batch per commit.",
    )
