"""The gateway's own sections: who it is (agent), where readings wait
(spool), where they go (uplink, with its TLS) and where it reports (status).

The uplink section checks its topic template at load (no {metric}: a message
carries many metrics) and that its delay ranges are ordered.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from core.topics import TopicTemplate
from edge_agent.config.section import Section, check_id


class AgentSettings(Section):
    site_id: str = Field(
        "site-1", description="This gateway's site; fills {site_id} in the uplink topic."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR."
    )

    @field_validator("site_id")
    @classmethod
    def _site(cls, value: str) -> str:
        return check_id(value, "site id")


class SpoolSettings(Section):
    path: Path = Field(
        Path("edge-spool.db"),
        description="The spool's SQLite file (with -wal and -shm beside it). Keep it on "
        "persistent storage: it is what survives outages, restarts and reboots.",
    )
    max_readings: int = Field(
        10_000_000,
        ge=10,
        description="The spool's bound. When full, the OLDEST readings are dropped, counted "
        "(edge_spool_dropped_readings_total) and logged. 40 to 80 bytes of disk a reading (bench/results/edge.json).",
    )
    synchronous: Literal["full", "normal"] = Field(
        "full",
        description="full: every spool commit is fsynced, so a power cut loses no reading "
        "that was spooled. normal: fewer fsyncs (flash wear), a kill -9 still loses nothing, "
        "but a power cut may lose the readings of the last commits before it.",
    )


class TlsSettings(Section):
    ca_file: Path | None = Field(None, description="CA bundle that signed the broker certificate.")
    cert_file: Path | None = Field(None, description="Client certificate, for mutual TLS.")
    key_file: Path | None = Field(None, description="Client private key, for mutual TLS.")


def _default_client_id() -> str:
    return f"edge-{socket.gethostname()}"[:40]


class UplinkSettings(Section):
    host: str = Field("127.0.0.1", description="Cloud broker host name or address.")
    port: int = Field(11883, ge=1, le=65535, description="Cloud broker port.")
    username: str | None = Field(None, description="Broker user (a gateway account).")
    password: SecretStr | None = Field(
        None, description="Broker password (or EDGE_UPLINK__PASSWORD)."
    )
    tls: TlsSettings | None = Field(None, description="Connect with TLS when set.")
    client_id: str = Field(
        default_factory=_default_client_id,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="MQTT client id.",
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive.")
    reconnect_min_s: int = Field(1, ge=1, description="First reconnect delay, whole seconds.")
    reconnect_max_s: int = Field(10, ge=1, description="Longest reconnect delay, whole seconds.")
    topic: str = Field(
        "telemetry/{site_id}/{device_id}",
        description="Topic template, as in the bridge's routes: {device_id} required, "
        "{site_id} optional, no {metric} (a message carries many metrics).",
    )
    codec: Literal["seed_json", "flat_json"] = Field(
        "seed_json",
        description="Payload format; the bridge's route for the topic must use the same codec.",
    )
    max_points_per_message: int = Field(
        500, ge=1, le=10_000, description="At most this many readings in one message."
    )
    max_bytes_per_message: int = Field(
        65_536,
        ge=1024,
        le=262_144,
        description="At most about this many payload bytes in one message (the bridge "
        "refuses more than 256 KiB).",
    )
    window: int = Field(
        2000,
        ge=1,
        le=20_000,
        description="Messages published and not yet acked at once (never more than the "
        "broker's Receive Maximum).",
    )
    live_window_s: float = Field(
        10.0,
        gt=0,
        description="A reading is live for this long after it was spooled, and is sent "
        "before any backlog; older unsent readings are backlog.",
    )
    drain_rate: float = Field(
        50_000.0,
        ge=0,
        description="Backlog readings sent per second at most, after live ones (0: no limit).",
    )
    retry_min_s: float = Field(
        0.2, gt=0, description="First delay before a message the broker did not deliver is resent."
    )
    retry_max_s: float = Field(5.0, gt=0, description="Longest such delay.")
    receipts: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Commit receipts from the bridge (receipts/<site_id>). on: a reading leaves "
        "the spool only once the bridge committed it. auto: as on, from the first receipt "
        "ever seen (kept in the spool); until then as off. off: it leaves on the broker's "
        "PUBACK (a broker crash can then lose what it had not saved).",
    )
    receipt_timeout_s: float = Field(
        60.0,
        gt=0,
        description="A message acknowledged by the broker and not receipted within this, "
        "while later ones were, is published again (the timeout doubles with each try, up "
        "to 16 times this). After a reconnect every unreceipted one is.",
    )
    stop_grace_s: float = Field(
        5.0,
        ge=0,
        description="On SIGTERM, forward what is spooled for up to this long before exiting "
        "(what is left stays in the spool).",
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        TopicTemplate(value)  # its ValueError says what is wrong
        if "{metric}" in value:
            raise ValueError(
                f"template {value!r}: no {{metric}} here; a message carries many metrics"
            )
        return value

    @model_validator(mode="after")
    def _ranges(self) -> UplinkSettings:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        if self.retry_min_s > self.retry_max_s:
            raise ValueError("retry_min_s must not exceed retry_max_s")
        return self


class StatusSettings(Section):
    host: str = Field("127.0.0.1", description="Address of /healthz and /metrics.")
    port: int = Field(9120, ge=0, le=65535, description="Port of /healthz and /metrics (0: off).")
