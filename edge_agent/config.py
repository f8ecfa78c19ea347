"""Typed configuration: a TOML file, overridden by EDGE_* environment variables.

Precedence, highest first: environment (``EDGE_UPLINK__PASSWORD``, with ``__``
between section and key), then the file given by ``--config`` or
``EDGE_CONFIG``, then the defaults below. Unknown keys are errors, in the file
and in every section. Loading validates everything a bad value could break
later (register maps, topic templates, device ids, metric names); nothing
connects until a command starts.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

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

from core import settings_file
from core.rules import ID, config_metric_name
from core.topics import TopicTemplate
from edge_agent.collect.opcua_config import OpcUaSettings
from edge_agent.collect.registers import RegisterSpec, check_map
from edge_agent.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_id(value: str, what: str) -> str:
    if len(value) > 128 or ID.fullmatch(value) is None:
        raise ValueError(f"{what} {value!r} must be 1 to 128 of [A-Za-z0-9_.:-]")
    return value


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
        return _check_id(value, "site id")


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


CODECS = ("seed_json", "flat_json")


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


class Signal(Section):
    name: str = Field(description="Metric name.")
    min: float = Field(description="Low end of the normal range.")
    max: float = Field(description="High end of the normal range.")
    noise: float = Field(0.01, ge=0, le=1, description="Noise, as a fraction of the range.")
    daily: float = Field(
        0.2, ge=0, le=1, description="Daily cycle's amplitude, as a fraction of the range."
    )
    drift_per_day: float = Field(
        0.05, ge=0, le=1, description="Slow drift, as a fraction of the range per day at most."
    )
    spike_probability: float = Field(
        0.001, ge=0, le=1, description="Chance that a reading is a spike beyond the range."
    )
    dropout_probability: float = Field(
        0.002, ge=0, le=1, description="Chance that a reading is missing (never generated)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return config_metric_name(value)

    @model_validator(mode="after")
    def _range(self) -> Signal:
        if self.min >= self.max:
            raise ValueError(f"signal {self.name}: min must be below max")
        return self


def _esp_signals() -> list[Signal]:
    """The seed's electric-submersible-pump signals."""
    return [
        Signal(name="flow_rate", min=1000, max=1500),  # type: ignore[call-arg]
        Signal(name="pip", min=2500, max=3000),  # type: ignore[call-arg]
        Signal(name="temperature", min=60, max=80),  # type: ignore[call-arg]
    ]


class Fault(Section):
    """An injected fault: a signal of one device reads ``value`` for a while,
    e.g. an overheating pump, to see alarms raised and cleared."""

    device: int = Field(ge=0, description="Device index (0 is <prefix>-0000).")
    signal: str = Field(description="The signal that misbehaves, e.g. temperature.")
    start_s: float = Field(ge=0, description="From this many seconds after the first reading...")
    end_s: float = Field(gt=0, description="...until this many (exclusive); then normal again.")
    value: float = Field(description="What the signal reads meanwhile.")

    @model_validator(mode="after")
    def _window(self) -> Fault:
        if self.end_s <= self.start_s:
            raise ValueError("a fault's end_s must be after its start_s")
        return self


class SimulatorSettings(Section):
    devices: int = Field(100, ge=1, le=1_000_000, description="Simulated devices.")
    rate: float = Field(
        1.0, gt=0, le=1000, description="Readings per device per second (each with every signal)."
    )
    seed: int = Field(1, description="Same seed, same fleet, same values: fully deterministic.")
    device_prefix: str = Field(
        "esp", description="Device ids are <prefix>-0000, <prefix>-0001, ..."
    )
    start: float | None = Field(
        None,
        description="Epoch seconds of the first reading (default: when first started). Kept "
        "in the spool: after a restart the simulator catches up the readings its devices "
        "took while the agent was down, like devices with their own data logger.",
    )
    duration_s: float | None = Field(
        None,
        gt=0,
        description="Stop generating after this many seconds of readings (default: never).",
    )
    signals: list[Signal] = Field(
        default_factory=_esp_signals,
        min_length=1,
        description="Signals of every device (default: flow_rate, pip, temperature).",
    )

    @field_validator("device_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return _check_id(value, "device_prefix")

    faults: list[Fault] = Field(
        default_factory=list,
        description="Injected faults, e.g. [[simulator.faults]] device = 0, signal = "
        '"temperature", start_s = 60, end_s = 180, value = 120.0.',
    )

    @model_validator(mode="after")
    def _unique(self) -> SimulatorSettings:
        names = [s.name for s in self.signals]
        if len(set(names)) != len(names):
            raise ValueError("signal names must be unique")
        for fault in self.faults:
            if fault.signal not in names:
                raise ValueError(f"fault on unknown signal {fault.signal!r}; signals: {names}")
            if fault.device >= self.devices:
                raise ValueError(f"fault on device {fault.device}, but there are {self.devices}")
        return self


class ModbusDevice(Section):
    device_id: str = Field(description="Device id, as the bridge will store it.")
    host: str = Field(description="PLC host name or address.")
    port: int = Field(502, ge=1, le=65535, description="Modbus TCP port.")
    unit: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id.")
    poll_interval_s: float = Field(1.0, gt=0, description="Poll every this many seconds.")
    timeout_s: float = Field(1.0, gt=0, description="Timeout of one request or connect.")
    backoff_max_s: float = Field(
        60.0, gt=0, description="Longest wait between attempts while the device does not answer."
    )
    max_gap: int = Field(
        0, ge=0, description="Unmapped registers (bits) one request may read across (0: none)."
    )
    registers: list[RegisterSpec] = Field(min_length=1, description="The register map.")

    @field_validator("device_id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_id(value, "device_id")

    @model_validator(mode="after")
    def _unique(self) -> ModbusDevice:
        seen: set[str] = set()
        for reg in self.registers:
            if reg.metric in seen:
                raise ValueError(f"device {self.device_id}: metric {reg.metric!r} is mapped twice")
            seen.add(reg.metric)
        check_map(self.device_id, self.registers, self.max_gap)
        return self


class ModbusSettings(Section):
    # What these do: edge_agent/collect/modbus_fleet.py.
    max_concurrent: int = Field(32, ge=1, le=10_000, description="Polls in flight at once.")
    commit_interval_s: float = Field(
        0.25, ge=0, le=5, description="Polls ending within this long share one spool commit."
    )
    stagger: bool = Field(True, description="Spread the devices' polls over their interval.")
    devices: list[ModbusDevice] = Field(
        default_factory=list, description="PLCs polled over Modbus TCP."
    )

    @model_validator(mode="after")
    def _unique(self) -> ModbusSettings:
        ids = [d.device_id for d in self.devices]
        if len(set(ids)) != len(ids):
            raise ValueError("device ids must be unique")
        return self


class LocalRoute(Section):
    topic: str = Field(
        description="Topic template on the gateway's broker, e.g. sensors/{device_id}/{metric}."
    )
    codec: Literal["seed_json", "flat_json", "raw_value"] = Field(
        "seed_json", description="Payload codec: seed_json, flat_json, raw_value."
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        TopicTemplate(value)
        return value


class LocalMqttSettings(Section):
    enabled: bool = Field(False, description="Subscribe to the gateway's own broker.")
    host: str = Field("127.0.0.1", description="The gateway broker's host.")
    port: int = Field(1883, ge=1, le=65535, description="The gateway broker's port.")
    username: str | None = Field(None, description="Broker user.")
    password: SecretStr | None = Field(None, description="Broker password.")
    client_id: str = Field(
        "edge-agent-local", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="MQTT client id."
    )
    routes: list[LocalRoute] = Field(
        default_factory=lambda: [
            LocalRoute(topic="sensors/{device_id}/{metric}", codec="raw_value")
        ],
        min_length=1,
        description="Topic templates and their codecs, as in the bridge's routes.",
    )


class Settings(BaseSettings):
    """The whole configuration. Section names are the TOML tables."""

    model_config = SettingsConfigDict(
        env_prefix="EDGE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    agent: AgentSettings = Field(default_factory=AgentSettings)  # type: ignore[arg-type]
    spool: SpoolSettings = Field(default_factory=SpoolSettings)  # type: ignore[arg-type]
    uplink: UplinkSettings = Field(default_factory=UplinkSettings)  # type: ignore[arg-type]
    status: StatusSettings = Field(default_factory=StatusSettings)  # type: ignore[arg-type]
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)  # type: ignore[arg-type]
    modbus: ModbusSettings = Field(default_factory=ModbusSettings)  # type: ignore[arg-type]
    local_mqtt: LocalMqttSettings = Field(default_factory=LocalMqttSettings)  # type: ignore[arg-type]
    opcua: OpcUaSettings = Field(default_factory=OpcUaSettings)


def load_settings(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Loads and validates the configuration; raises ConfigError saying what to fix.

    ``path`` defaults to $EDGE_CONFIG. ``overrides`` (section -> key -> value,
    from command-line options) win over everything else.
    """
    if path is None and os.environ.get("EDGE_CONFIG"):
        path = Path(os.environ["EDGE_CONFIG"])
    try:
        return settings_file.load(Settings, path, "EDGE_*", overrides)
    except settings_file.SettingsProblem as exc:
        raise ConfigError(str(exc)) from None


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, secrets masked, for --print-config."""
    data = settings.model_dump(mode="json")
    for section in ("uplink", "local_mqtt"):
        if data[section]["password"] is not None:
            data[section]["password"] = "***"  # noqa: S105 - the mask, not a password
    for server in data["opcua"]["servers"]:
        if server["password"] is not None:
            server["password"] = "***"  # noqa: S105 - the mask, not a password
    return data
